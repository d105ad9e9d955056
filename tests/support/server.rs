//! The real server, in the test's process, on free ports of 127.0.0.1: gRPC
//! and the `/metrics` listener. Dropping it stops it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use draft_publisher::{
    App, Clock, Store,
    server::{self, Listeners, ServerSettings},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub struct TestServer {
    pub addr: SocketAddr,
    /// The plain-HTTP listener serving `/metrics`.
    pub metrics_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0")
}

impl TestServer {
    /// Starts serving from `store`, with time from `clock`; calls are
    /// accepted once this returns.
    pub async fn spawn(store: Store, clock: Arc<dyn Clock>, settings: ServerSettings) -> Self {
        let (grpc, metrics) = (bind().await, bind().await);
        let addr = grpc.local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let listeners = Listeners { grpc, metrics: Some(metrics) };
        let app = App::new(store.clone(), clock);
        let task = tokio::spawn(server::serve(listeners, app, store, settings, async {
            let _ = signal.await;
        }));
        Self { addr, metrics_addr, shutdown: Some(shutdown), task: Some(task) }
    }

    /// Begins a graceful shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits (at most 30 s) for the server to stop, returning what `serve`
    /// returned.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        let task = self.task.take().expect("server still running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server stopped within 30 s")
            .expect("server task did not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
