//! Assembles the gRPC server — the DraftPublisher service, health and
//! reflection, behind authentication, limits and TLS, each call observed —
//! and runs it (with the metrics listener, when configured) until shutdown,
//! then drains the calls in flight for at most the grace period.
//!
//! `connection` (handshake, stalls, end of life), `stalls`, `limits` (with
//! `deadline` and the request size limit), `observe` with `stream_errors`, and `tls`
//! hold the parts, `http2` the connection limits; this file only wires them.

mod connection;
mod deadline;
mod handshake;
mod http2;
mod limits;
mod observe;
mod stalls;
mod stream_errors;
mod tls;

use std::{future::Future, time::Duration};

use anyhow::Context;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
};
use tokio_stream::Stream;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

use self::{
    connection::{ConnectionDeadlines, GuardedIo},
    limits::{CallLimitsLayer, MessageWait},
    observe::ObserveLayer,
    stalls::StallsLayer,
};
pub use self::{
    http2::Http2Limits,
    tls::{TLS_HANDSHAKE_TIMEOUT, TlsSettings},
};
pub use crate::auth::{BearerTokens, ClientOrganizations};
pub use crate::relay::RelaySettings;
use crate::{
    api::DraftPublisherApi, app::App, auth::Authenticator, defaults, health, metrics::Metrics,
    proto::v1 as pb, store::Store,
};

/// How the server treats connections and shutdown.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long calls in flight may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Largest request accepted; larger ones are rejected unread.
    pub max_message_size: usize,
    /// How often the database is probed for health.
    pub health_probe_interval: Duration,
    /// Calls to the service and reflection must carry one of these; health
    /// stays open for probes. `None`: no authentication.
    pub auth: Option<BearerTokens>,
    /// Under mutual TLS, the organisations each client certificate's CN may
    /// act for; unlisted CNs may call nothing. `None`: any certificate of
    /// the CA may act for every organisation.
    pub tls_client_orgs: Option<ClientOrganizations>,
    /// Longest a call may take before it is answered DEADLINE_EXCEEDED.
    pub request_timeout: Duration,
    /// How long a call may take to deliver its request message before it is
    /// answered DEADLINE_EXCEEDED; it takes a concurrency slot only once
    /// the message is there.
    pub request_message_timeout: Duration,
    /// Calls in flight beyond this are refused at once (UNAVAILABLE,
    /// `OVERLOADED`) rather than queued. Health checks are not counted.
    pub max_concurrent_calls: usize,
    /// How often an HTTP/2 PING checks that an idle connection's peer is alive.
    pub http2_keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// TLS (and mutual TLS) for the gRPC listener; `None`: plaintext.
    pub tls: Option<TlsSettings>,
    /// HTTP/2 limits of each connection.
    pub http2: Http2Limits,
    /// The NATS JetStream relay of the change feed; `None`: off.
    pub relay: Option<RelaySettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            max_message_size: defaults::MAX_MESSAGE_BYTES,
            health_probe_interval: defaults::HEALTH_PROBE_INTERVAL,
            auth: None,
            tls_client_orgs: None,
            request_timeout: defaults::REQUEST_TIMEOUT,
            request_message_timeout: defaults::REQUEST_MESSAGE_TIMEOUT,
            max_concurrent_calls: defaults::MAX_CONCURRENT_CALLS as usize,
            http2_keepalive_interval: defaults::HTTP2_KEEPALIVE_INTERVAL,
            http2_keepalive_timeout: defaults::HTTP2_KEEPALIVE_TIMEOUT,
            tls: None,
            http2: Http2Limits::default(),
            relay: None,
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

/// Where the server listens: gRPC, and `/metrics` when configured.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(grpc: TcpListener) -> Self {
        Self { grpc, metrics: None }
    }
}

/// Serves `app` until `shutdown` resolves. `store` is the app's database,
/// which health probes and whose pool the metrics report. Health turns
/// NOT_SERVING at once, new connections are refused, and calls in flight get
/// `shutdown_grace` to finish; the function returns when they have (or when
/// the grace period runs out, with a warning).
pub async fn serve(
    listeners: impl Into<Listeners>,
    app: App,
    store: Store,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners { grpc: listener, metrics: metrics_listener } = listeners.into();
    let local_addr = listener.local_addr().context("reading the listen address")?;
    let transport = builder(&settings)?;
    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    let reflection_v1alpha = reflection().build_v1alpha().context("building reflection v1alpha")?;

    let (reporter, health_service) = tonic_health::server::health_reporter();
    health::report(&reporter, ServingStatus::NotServing).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let probe = tokio::spawn(health::probe_database(
        reporter.clone(),
        store.clone(),
        settings.health_probe_interval,
        stop_rx,
    ));
    let metrics = Metrics::new();
    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    let metrics_server = metrics_listener.map(|listener| {
        let stopped = async {
            let _ = metrics_stopped.await;
        };
        tokio::spawn(crate::metrics::serve(listener, metrics.clone(), store.clone(), app.clone(), stopped))
    });

    let (draining_tx, mut draining_rx) = watch::channel(false);
    let feed = app.feed().spawn(store.background(), app.clock(), draining_rx.clone());
    let relay = settings.relay.clone().map(|relay| {
        let (store, feed, clock) = (store.background(), app.feed().clone(), app.clock());
        tokio::spawn(crate::relay::run(relay, store, feed, clock, metrics.clone(), draining_rx.clone()))
    });
    let on_shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: refusing new calls, draining calls in flight");
        health::report(&reporter, ServingStatus::NotServing).await;
        // The probe has the last word: NOT_SERVING, then the end of Watch streams.
        let _ = stop_tx.send(true);
        let _ = draining_tx.send(true);
    };

    tracing::info!(
        %local_addr,
        tls = settings.tls.is_some(),
        mutual_tls = settings.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()),
        authentication = settings.auth.is_some(),
        client_organizations = settings.tls_client_orgs.is_some(),
        "serving gRPC"
    );
    let answers = stalls::Registry::new(settings.http2.max_stalled_answers);
    let incoming = guarded(listener, &settings, answers.clone());
    let auth = Authenticator::new(settings.auth.clone(), settings.tls_client_orgs.clone());
    let message_wait =
        MessageWait { timeout: settings.request_message_timeout, max_bytes: settings.max_message_size };
    let publisher = pb::draft_publisher_server::DraftPublisherServer::new(DraftPublisherApi::new(
        app,
        draining_rx.clone(),
    ))
    .max_decoding_message_size(settings.max_message_size);
    let server = transport
        // The first layer is the outermost: it observes what the limits refuse.
        .layer(ObserveLayer::new(metrics))
        .layer(StallsLayer::new(answers))
        .layer(CallLimitsLayer::new(settings.request_timeout, message_wait, settings.max_concurrent_calls))
        .add_service(health_service)
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(InterceptedService::new(publisher, auth))
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
    let served = tokio::select! {
        result = &mut server => result.context("serving gRPC"),
        () = grace_over => {
            tracing::warn!(
                grace = ?settings.shutdown_grace,
                "calls still in flight after the grace period; stopping anyway"
            );
            Ok(())
        }
    };
    // The probe stops with the shutdown signal, which the server drops when
    // it ends for any reason; the metrics listener stops last.
    let _ = probe.await;
    let _ = feed.await;
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    let _ = metrics_stop.send(());
    if let Some(metrics_server) = metrics_server {
        metrics_server.await.context("metrics listener task")??;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// The listener's connections, each guarded (see `connection`), their
/// answers watched in `answers`.
fn guarded(
    listener: TcpListener,
    settings: &ServerSettings,
    answers: stalls::Registry,
) -> impl Stream<Item = std::io::Result<GuardedIo<TcpStream>>> {
    let deadlines = ConnectionDeadlines {
        handshake_timeout: settings.http2.handshake_timeout,
        max_lifetime: settings.http2.max_connection_age + settings.http2.max_connection_age_grace,
        plaintext: settings.tls.is_none(),
        stalled_answer_timeout: settings.http2.stalled_answer_timeout,
    };
    // tonic sets TCP_NODELAY only on listeners it binds itself. Without it,
    // Nagle's algorithm holds a small answer back until the client
    // acknowledges the previous one: milliseconds per call.
    connection::guard(TcpIncoming::from(listener).with_nodelay(Some(true)), deadlines, answers)
}

/// The transport: HTTP/2 keepalive and limits, and TLS.
fn builder(settings: &ServerSettings) -> anyhow::Result<Server> {
    let limits = &settings.http2;
    let builder = Server::builder()
        .http2_keepalive_interval(Some(settings.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(settings.http2_keepalive_timeout))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        .http2_max_pending_accept_reset_streams(Some(limits.max_pending_accept_reset_streams))
        .http2_max_header_list_size(limits.max_header_list_bytes)
        // The age alone: given a grace as well, tonic 0.14 sends no GOAWAY
        // at the age and just cuts the connection at age + grace, which
        // `connection` does instead.
        .max_connection_age(limits.max_connection_age);
    match &settings.tls {
        Some(tls) => builder.tls_config(tls.server_config()).context("configuring TLS"),
        None => Ok(builder),
    }
}
