//! A private PostgreSQL cluster for tests that must stop, kill or restart the
//! database: the system's binaries, a temporary folder, a free port. It is
//! stopped and deleted when dropped.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::net::free_port;

/// How to stop the server (`pg_ctl stop -m`).
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// Roll back open transactions, disconnect clients, shut down cleanly.
    Fast,
    /// Abort without a clean shutdown, as a crash would.
    Immediate,
}

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Set when running as root: the cluster runs as this system user,
    /// since PostgreSQL refuses to run as root.
    run_as: Option<String>,
    /// Set by [`PgCluster::kill`]: there is no server left to stop.
    killed: std::sync::atomic::AtomicBool,
}

/// The newest PostgreSQL server binaries installed on this machine.
fn bin_dir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    candidates.sort_by_key(|bin| {
        bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    candidates.pop().unwrap_or_else(|| {
        let output = Command::new("pg_config").arg("--bindir").output().expect(
            "PostgreSQL server binaries not found: install the postgresql package (scripts/postgres.sh does)",
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PgCluster {
    /// Initialises and starts a new cluster (trust authentication, user
    /// `postgres`, listening on 127.0.0.1 only).
    pub fn start() -> Self {
        let cluster = Self::new();
        cluster.pg(
            "initdb",
            &["-D", &cluster.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
        );
        cluster.start_again();
        cluster
    }

    /// A cluster not initialised yet: its folder, binaries and port.
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("draft-publisher-pg-").tempdir().unwrap();
        let run_as = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let status = Command::new("chown").arg(format!("{user}:")).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown of the cluster folder to {user}");
        }
        Self { dir, bin: bin_dir(), port: free_port(), run_as, killed: Default::default() }
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`: a copy of its
    /// data, then its WAL as it is written), started on a port of its own.
    pub fn start_standby_of(primary: &PgCluster) -> Self {
        let standby = Self::new();
        let port = primary.port.to_string();
        let data = standby.data();
        // A fast checkpoint: the default spreads it over minutes.
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-D",
            &data,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ];
        standby.pg("pg_basebackup", &args);
        standby.start_again();
        standby
    }

    /// Turns a standby into a primary, waiting until it accepts writes.
    pub fn promote(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-w", "-t", "60", "promote"]);
    }

    /// SIGKILL to the postmaster, as a crashed machine would stop it.
    pub fn kill(&self) {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).unwrap();
        let pid = pid_file.lines().next().unwrap().trim();
        let status = Command::new("kill").args(["-KILL", pid]).status().unwrap();
        assert!(status.success(), "kill -KILL {pid}");
        self.killed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command.args(args).output().unwrap_or_else(|e| panic!("running {program:?}: {e}"));
        assert!(
            output.status.success(),
            "{program:?} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// Starts the (stopped) server again on the same port, waiting until it
    /// accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "-t", "60", "start"]);
    }

    pub fn stop(&self, mode: StopMode) {
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        self.pg("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"]);
    }

    /// Restarts the server, waiting until it accepts connections again.
    pub fn restart(&self, mode: StopMode) {
        self.stop(mode);
        self.start_again();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of `database` on this cluster (which the service creates itself).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if *self.killed.get_mut() {
            return;
        }
        let data = self.data();
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
        }));
        // Already stopped by the test: nothing to do.
        drop(stopped);
    }
}
