//! The `draft-publisher` binary that cargo built for these tests, run as
//! operators run it.

use std::process::Command;

pub const BINARY: &str = env!("CARGO_BIN_EXE_draft-publisher");

/// `draft-publisher` against `database_url`, logging warnings only. Without
/// the NATS_URL that scripts/test.sh exports for the client suites: a test
/// that wants the relay passes `--nats-url` to a server of its own.
pub fn command(database_url: &str) -> Command {
    let mut command = Command::new(BINARY);
    command.env("DATABASE_URL", database_url).env("RUST_LOG", "warn").env_remove("NATS_URL");
    command
}

/// What a finished `draft-publisher audit` said.
#[derive(Debug)]
pub struct AuditRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_audit(database_url: &str) -> AuditRun {
    let output = command(database_url).arg("audit").output().expect("draft-publisher audit runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8 output");
    AuditRun { code: output.status.code(), stdout: text(output.stdout), stderr: text(output.stderr) }
}
