//! Assembles the gRPC server — the DraftPublisher service, health and
//! reflection — and runs it on a bound listener until shutdown, then drains
//! the calls in flight for at most the grace period.

use std::{future::Future, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{api::DraftPublisherApi, app::App, health, proto::v1 as pb};

/// How the server treats connections and shutdown.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long calls in flight may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Largest request accepted; larger ones are rejected unread.
    pub max_message_size: usize,
    /// How often the database is probed for health.
    pub health_probe_interval: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
            max_message_size: 1024 * 1024,
            health_probe_interval: Duration::from_millis(500),
        }
    }
}

/// Reflection knows the service, health, and the `google.rpc` error details,
/// so that grpcurl can also decode `ErrorInfo` and `BadRequest` in errors.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Serves on `listener` until `shutdown` resolves. Health turns NOT_SERVING
/// at once, new connections are refused, and calls in flight get
/// `shutdown_grace` to finish; the function returns when they have (or when
/// the grace period runs out, with a warning).
pub async fn serve(
    listener: TcpListener,
    app: App,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    health::report(&reporter, ServingStatus::NotServing).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let probe = tokio::spawn(health::probe_database(
        reporter.clone(),
        app.store().clone(),
        settings.health_probe_interval,
        stop_rx,
    ));

    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    let reflection_v1alpha = reflection().build_v1alpha().context("building reflection v1alpha")?;
    let publisher = pb::draft_publisher_server::DraftPublisherServer::new(DraftPublisherApi::new(app))
        .max_decoding_message_size(settings.max_message_size);

    let (draining_tx, mut draining_rx) = watch::channel(false);
    let shutdown_reporter = reporter.clone();
    let on_shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: refusing new calls, draining calls in flight");
        let _ = stop_tx.send(true);
        health::report(&shutdown_reporter, ServingStatus::NotServing).await;
        let _ = draining_tx.send(true);
    };

    let local_addr = listener.local_addr().context("reading the listen address")?;
    tracing::info!(%local_addr, "serving gRPC");
    // tonic sets TCP_NODELAY only on listeners it binds itself. Without it,
    // Nagle's algorithm holds a small answer back until the client
    // acknowledges the previous one: milliseconds per call.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(publisher)
        .serve_with_incoming_shutdown(incoming, on_shutdown);
    tokio::pin!(server);

    let grace_over = async {
        while !*draining_rx.borrow_and_update() {
            if draining_rx.changed().await.is_err() {
                // The shutdown future was dropped: the server has stopped.
                std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(settings.shutdown_grace).await;
    };
    tokio::select! {
        result = &mut server => result.context("serving gRPC")?,
        () = grace_over => tracing::warn!(
            grace = ?settings.shutdown_grace,
            "calls still in flight after the grace period; stopping anyway"
        ),
    }
    let _ = probe.await;
    tracing::info!("stopped");
    Ok(())
}
