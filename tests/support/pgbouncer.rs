//! A private PgBouncer in transaction pooling mode, in front of the tests'
//! PostgreSQL server, on a free port: what a production deployment puts
//! between the service and its database. Settings are Debian's 1.18 with
//! only `ignore_startup_parameters = extra_float_digits` relaxed, and
//! `server_login_retry = 1` as docs/deployment.md recommends (the default
//! 15 s held the service off PostgreSQL that long after a restart). It is
//! stopped when dropped.

use std::{
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use sqlx::postgres::PgConnectOptions;

use crate::support::{database::server_url, net::free_port};

/// Server connections per database, unless a test says otherwise.
const SERVER_CONNECTIONS: u32 = 40;

/// How long PgBouncer may take to accept connections.
const STARTUP: Duration = Duration::from_secs(10);

pub struct PgBouncer {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

/// Where Debian installs the binary (not on every PATH).
fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/pgbouncer");
    if sbin.exists() { sbin } else { PathBuf::from("pgbouncer") }
}

/// The user and group ids of `postgres`: PgBouncer refuses to run as root.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let output = Command::new("id").args([flag, "postgres"]).output().expect("running id");
        assert!(output.status.success(), "no user postgres: run scripts/provision.sh");
        String::from_utf8_lossy(&output.stdout).trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PgBouncer {
    /// Starts PgBouncer in front of the server of `DATABASE_URL`, waiting
    /// until it accepts connections.
    pub fn start() -> Self {
        Self::start_with_server_connections(SERVER_CONNECTIONS)
    }

    /// Like [`PgBouncer::start`], with at most `server_connections` to
    /// PostgreSQL per database: with very few, every client's transactions
    /// share them, so that any session state one leaves behind meets the
    /// others.
    pub fn start_with_server_connections(server_connections: u32) -> Self {
        let server = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
        Self::start_with(server.get_host(), server.get_port(), server_connections)
    }

    /// Starts PgBouncer in front of the PostgreSQL server at `host:port`.
    pub fn start_in_front_of(host: &str, port: u16) -> Self {
        Self::start_with(host, port, SERVER_CONNECTIONS)
    }

    fn start_with(host: &str, port: u16, server_connections: u32) -> Self {
        let dir = tempfile::Builder::new().prefix("draft-publisher-pgbouncer-").tempdir().unwrap();
        let listen_port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        // Every database of the server, as user postgres (trust, as the
        // test server itself): only the pooling mode matters here.
        let config = format!(
            "[databases]\n\
             * = host={host} port={port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {listen_port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {auth}\n\
             pool_mode = transaction\n\
             ignore_startup_parameters = extra_float_digits\n\
             max_client_conn = 1000\n\
             default_pool_size = {server_connections}\n\
             logfile = {log}\n\
             pidfile = {pid}\n\
             server_login_retry = 1\n",
            auth = path("users.txt"),
            log = path("log"),
            pid = path("pid"),
        );
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(dir.path().join("pgbouncer.ini"), config).unwrap();
        let mut command = Command::new(binary());
        command.arg(path("pgbouncer.ini")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if is_root() {
            let (uid, gid) = postgres_ids();
            let chown = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(dir.path()).status();
            assert!(chown.is_ok_and(|s| s.success()), "chown of the PgBouncer folder");
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("pgbouncer runs: install it with scripts/provision.sh");
        let bouncer = Self { dir, child, port: listen_port };
        bouncer.wait_until_accepting();
        bouncer
    }

    fn wait_until_accepting(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PgBouncer not accepting connections within {STARTUP:?}: {}",
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of `database` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// PgBouncer's log so far, for assertions and failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
