//! The deployment under test: a private PostgreSQL cluster and replicas of
//! the real `draft-publisher` binary as separate processes on 127.0.0.1.
//! Everything is killed and removed when the deployment is dropped.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::{Child, ExitStatus, Stdio},
    time::Duration,
};

use crate::support::{
    TestClient,
    binary::{command, run_audit},
    free_port,
    health::{self, SERVICE, ServingStatus},
    net::lazy_channel,
    pg_cluster::PgCluster,
    pgbouncer::PgBouncer,
    wait::{self, until},
};

const DATABASE: &str = "draft_publisher";

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
        command(database_url)
            .args(["serve", "--skip-migrations", "--listen-addr", &format!("127.0.0.1:{port}")])
            .args(extra_args)
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
        let status =
            std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the process to exit, for at most `within`.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let what = format!("replica on port {} exits", self.port);
        wait::until_some(&what, within, || std::future::ready(self.child.try_wait().unwrap())).await
    }

    fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// A client on a connection of its own, reconnecting after failures.
    pub fn client(&self) -> TestClient {
        TestClient::new(lazy_channel(self.addr()))
    }

    /// Health of the service on a fresh connection; `None` when it cannot
    /// be asked (not listening, shutting down).
    pub async fn health(&self) -> Option<ServingStatus> {
        let check = health::check(lazy_channel(self.addr()), SERVICE);
        tokio::time::timeout(Duration::from_secs(2), check).await.ok()?.ok()
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

/// A cluster and the replicas serving from it, directly or through a
/// PgBouncer. Replicas are declared first, so they are killed before the
/// pooler and the cluster stop.
pub struct Deployment {
    pub replicas: Vec<Replica>,
    pub database_url: String,
    /// Held only to keep the pooler running.
    _pooler: Option<PgBouncer>,
    pub cluster: PgCluster,
}

impl Deployment {
    /// Starts a cluster, migrates it with `draft-publisher migrate`, and
    /// starts `replicas` replicas with `extra_args`, waiting until they serve.
    pub async fn start(replicas: usize, extra_args: &[&str]) -> Self {
        Self::start_with(replicas, extra_args, false).await
    }

    /// Like [`Deployment::start`], with the replicas reaching the cluster
    /// through a PgBouncer in transaction pooling mode
    /// (`--db-pooler transaction`); migrations still go directly.
    pub async fn start_through_pgbouncer(replicas: usize, extra_args: &[&str]) -> Self {
        Self::start_with(replicas, extra_args, true).await
    }

    async fn start_with(replicas: usize, extra_args: &[&str], through_pgbouncer: bool) -> Self {
        let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
        let database_url = cluster.url(DATABASE);
        let migrate = command(&database_url).arg("migrate").status().unwrap();
        assert!(migrate.success(), "draft-publisher migrate: {migrate}");
        let mut extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let pooler = through_pgbouncer.then(|| PgBouncer::start_in_front_of("127.0.0.1", cluster.port()));
        let serve_url = match &pooler {
            Some(pooler) => {
                extra_args.extend(["--db-pooler".to_owned(), "transaction".to_owned()]);
                pooler.url(DATABASE)
            }
            None => database_url.clone(),
        };
        let replicas = (0..replicas)
            .map(|_| {
                let port = free_port();
                let child = Replica::spawn(&serve_url, port, &extra_args);
                Replica { child, port, database_url: serve_url.clone(), extra_args: extra_args.clone() }
            })
            .collect::<Vec<_>>();
        for replica in &replicas {
            replica.until_serving(Duration::from_secs(30)).await;
        }
        Self { replicas, database_url, _pooler: pooler, cluster }
    }

    /// `n` clients, each on its own connection, spread over the replicas.
    pub fn clients(&self, n: usize) -> Vec<TestClient> {
        (0..n).map(|i| self.replicas[i % self.replicas.len()].client()).collect()
    }

    /// A pool of the test's own, for checks in SQL.
    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url).await.expect("test pool")
    }

    /// Runs `draft-publisher audit` and asserts it finds the database clean.
    pub fn assert_audit_clean(&self) {
        let run = run_audit(&self.database_url);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.starts_with("audit clean:"), "{run:?}");
        println!("{}", run.stdout.trim_end());
    }
}
