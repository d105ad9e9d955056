//! The deployment under test: a private PostgreSQL cluster and replicas of
//! the real `draft-publisher` binary as separate processes on 127.0.0.1.
//! Everything is killed and removed when the deployment is dropped.

use std::{
    net::TcpListener,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use draft_publisher::proto::v1::draft_publisher_client::DraftPublisherClient;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::support::pg_cluster::PgCluster;

pub type Client = DraftPublisherClient<Channel>;

pub const BINARY: &str = env!("CARGO_BIN_EXE_draft-publisher");
const DATABASE: &str = "draft_publisher";

/// Polls `condition` every 20 ms until it holds, for at most `within`.
pub async fn until<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `draft-publisher serve` process, restartable on the same port.
pub struct Replica {
    child: Child,
    pub port: u16,
    database_url: String,
    extra_args: Vec<String>,
}

impl Replica {
    fn spawn(database_url: &str, port: u16, extra_args: &[String]) -> Child {
        let logs = std::env::var_os("TEST_LOG").is_some();
        Command::new(BINARY)
            .args(["serve", "--skip-migrations", "--listen-addr", &format!("127.0.0.1:{port}")])
            .args(extra_args)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(if logs { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("draft-publisher serve starts")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as a crash or an OOM kill would, and reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again on the same port (after `kill`).
    pub fn restart(&mut self) {
        assert!(!self.is_running(), "restart of a running replica");
        self.child = Self::spawn(&self.database_url, self.port, &self.extra_args);
    }

    /// SIGTERM: the graceful shutdown a deployment starts.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the process to exit, for at most `within`.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < within, "replica still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy()
    }

    /// A client on a connection of its own, reconnecting after failures.
    pub fn client(&self) -> Client {
        Client::new(self.channel())
    }

    /// Health of the service on a fresh connection; `None` when it cannot
    /// be asked (not listening, shutting down).
    pub async fn health(&self) -> Option<ServingStatus> {
        let request = HealthCheckRequest { service: "draftpublisher.v1.DraftPublisher".into() };
        let mut health = HealthClient::new(self.channel());
        match tokio::time::timeout(Duration::from_secs(2), health.check(request)).await {
            Ok(Ok(answer)) => Some(answer.into_inner().status()),
            _ => None,
        }
    }

    pub async fn until_serving(&self, within: Duration) {
        let what = format!("replica on port {} SERVING", self.port);
        until(&what, within, || async { self.health().await == Some(ServingStatus::Serving) }).await;
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster and the replicas serving from it. Replicas are declared
/// first, so they are killed before the cluster stops.
pub struct Deployment {
    pub replicas: Vec<Replica>,
    pub database_url: String,
    pub cluster: PgCluster,
}

impl Deployment {
    /// Starts a cluster, migrates it with `draft-publisher migrate`, and
    /// starts `replicas` replicas with `extra_args`, waiting until they serve.
    pub async fn start(replicas: usize, extra_args: &[&str]) -> Self {
        let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
        let database_url = cluster.url(DATABASE);
        let migrate = Command::new(BINARY)
            .arg("migrate")
            .env("DATABASE_URL", &database_url)
            .env("RUST_LOG", "warn")
            .status()
            .unwrap();
        assert!(migrate.success(), "draft-publisher migrate: {migrate}");
        let extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let replicas = (0..replicas)
            .map(|_| {
                let port = free_port();
                let child = Replica::spawn(&database_url, port, &extra_args);
                Replica { child, port, database_url: database_url.clone(), extra_args: extra_args.clone() }
            })
            .collect::<Vec<_>>();
        for replica in &replicas {
            replica.until_serving(Duration::from_secs(30)).await;
        }
        Self { replicas, database_url, cluster }
    }

    /// `n` clients, each on its own connection, spread over the replicas.
    pub fn clients(&self, n: usize) -> Vec<Client> {
        (0..n).map(|i| self.replicas[i % self.replicas.len()].client()).collect()
    }

    /// A pool of the test's own, for checks in SQL.
    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url).await.expect("test pool")
    }

    /// Runs `draft-publisher audit` and asserts it finds the database clean.
    pub fn assert_audit_clean(&self) {
        let output = Command::new(BINARY)
            .arg("audit")
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "audit: {}\n{stdout}{stderr}", output.status);
        assert!(stdout.starts_with("audit clean:"), "{stdout}");
        println!("{}", stdout.trim_end());
    }
}
