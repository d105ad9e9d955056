//! Prometheus metrics: what each server counts, and the plain-HTTP listener
//! that serves them on `/metrics` (separate from gRPC, off unless configured).
//!
//! Each server has a registry of its own rather than the process-global one,
//! so that servers sharing a process (tests) count only their own calls.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tonic::Code;

use crate::{
    app::{App, PublishOutcome},
    store::{PoolStats, Store},
};

/// The metrics of one server; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    calls: IntCounterVec,
    call_seconds: HistogramVec,
    publishes: IntCounterVec,
    stream_errors: IntCounterVec,
    pool_connections: IntGaugeVec,
    pool_max_connections: IntGauge,
    pool_waiting: IntGauge,
    changes_written: IntCounter,
    changes_sent: IntCounter,
    relay_errors: IntCounter,
    oldest_unsent_seconds: Gauge,
    watch_streams: IntGauge,
    publishes_waiting: IntGauge,
    cache_lookups: IntCounterVec,
    cache_bytes: IntGauge,
    /// One render at a time: it copies counters kept elsewhere (the cache's)
    /// by adding what they grew since the last render.
    rendering: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let calls = IntCounterVec::new(
            Opts::new("draftpublisher_grpc_calls_total", "gRPC calls answered, by method and status code"),
            &["method", "code"],
        )
        .expect("valid metric");
        let call_seconds = HistogramVec::new(
            HistogramOpts::new("draftpublisher_grpc_call_duration_seconds", "Time to answer a gRPC call")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method"],
        )
        .expect("valid metric");
        let publishes = IntCounterVec::new(
            Opts::new(
                "draftpublisher_publish_outcomes_total",
                "Successful PublishDraft calls: created, already_published (read as published), \
                 lost_race (already published, learnt from the unique violation)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let stream_errors = IntCounterVec::new(
            Opts::new(
                "draftpublisher_http2_stream_errors_total",
                "Calls ended by an HTTP/2 error of the client's making (a stream the client \
                 broke, a connection it lost), by HTTP/2 error code; not in grpc_calls_total",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let pool_connections = IntGaugeVec::new(
            Opts::new("draftpublisher_db_pool_connections", "Open database connections, by state"),
            &["state"],
        )
        .expect("valid metric");
        let pool_max_connections =
            IntGauge::new("draftpublisher_db_pool_max_connections", "Configured size limit of the pool")
                .expect("valid metric");
        let pool_waiting =
            IntGauge::new("draftpublisher_db_pool_waiting_calls", "Calls waiting for a database connection")
                .expect("valid metric");
        let changes_written = IntCounter::new(
            "draftpublisher_event_changes_written_total",
            "Event changes written by this server's publishes (SCHEDULED and PUBLISHED)",
        )
        .expect("valid metric");
        let changes_sent = IntCounter::new(
            "draftpublisher_event_changes_sent_total",
            "Event changes acknowledged by NATS JetStream (new or duplicate) and recorded as sent by this server",
        )
        .expect("valid metric");
        let relay_errors = IntCounter::new(
            "draftpublisher_relay_errors_total",
            "Failures of the NATS relay (connecting, publishing, acknowledging, marking sent)",
        )
        .expect("valid metric");
        let oldest_unsent_seconds = Gauge::new(
            "draftpublisher_event_changes_oldest_unsent_seconds",
            "Age of the oldest due event change not yet acknowledged by NATS (0: none); only with the relay on",
        )
        .expect("valid metric");
        let watch_streams =
            IntGauge::new("draftpublisher_watch_streams", "WatchEventChanges streams open on this server")
                .expect("valid metric");
        let publishes_waiting = IntGauge::new(
            "draftpublisher_publish_calls_waiting",
            "PublishDraft calls waiting for a publish of the same draft in flight on this server",
        )
        .expect("valid metric");
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "draftpublisher_published_cache_lookups_total",
                "Lookups of the published-draft cache (repeated PublishDraft, GetEvent), by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let cache_bytes = IntGauge::new(
            "draftpublisher_published_cache_bytes",
            "Estimated memory held by the published-draft cache",
        )
        .expect("valid metric");
        let registry = Registry::new();
        for collector in [
            Box::new(calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(call_seconds.clone()),
            Box::new(publishes.clone()),
            Box::new(stream_errors.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_max_connections.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(changes_written.clone()),
            Box::new(changes_sent.clone()),
            Box::new(relay_errors.clone()),
            Box::new(oldest_unsent_seconds.clone()),
            Box::new(watch_streams.clone()),
            Box::new(publishes_waiting.clone()),
            Box::new(cache_lookups.clone()),
            Box::new(cache_bytes.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        let inner = Inner {
            registry,
            calls,
            call_seconds,
            publishes,
            stream_errors,
            pool_connections,
            pool_max_connections,
            pool_waiting,
            changes_written,
            changes_sent,
            relay_errors,
            oldest_unsent_seconds,
            watch_streams,
            publishes_waiting,
            cache_lookups,
            cache_bytes,
            rendering: std::sync::Mutex::new(()),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn observe_call(&self, method: &str, code: Code, elapsed: Duration) {
        self.inner.calls.with_label_values(&[method, code_name(code)]).inc();
        self.inner.call_seconds.with_label_values(&[method]).observe(elapsed.as_secs_f64());
    }

    pub fn observe_publish(&self, outcome: PublishOutcome) {
        self.inner.publishes.with_label_values(&[outcome_name(outcome)]).inc();
    }

    /// A call that ended with an HTTP/2 error of the client's making.
    pub fn observe_stream_error(&self, reason: &'static str) {
        self.inner.stream_errors.with_label_values(&[reason]).inc();
    }

    pub fn observe_changes_written(&self, changes: usize) {
        self.inner.changes_written.inc_by(changes as u64);
    }

    pub fn observe_changes_sent(&self, changes: usize) {
        self.inner.changes_sent.inc_by(changes as u64);
    }

    pub fn observe_relay_error(&self) {
        self.inner.relay_errors.inc();
    }

    pub fn set_oldest_unsent_age(&self, seconds: f64) {
        self.inner.oldest_unsent_seconds.set(seconds);
    }

    /// The text exposition format, with the gauges read from the pool and
    /// the app now.
    pub fn render(&self, pool: PoolStats, app: &App) -> String {
        let _rendering = self.inner.rendering.lock().unwrap_or_else(|e| e.into_inner());
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.inner.watch_streams.set(gauge(app.feed().watchers()));
        self.inner.publishes_waiting.set(gauge(app.publishes_waiting()));
        let cache = app.cache_stats();
        self.inner.cache_bytes.set(gauge(cache.bytes));
        for (result, total) in [("hit", cache.hits), ("miss", cache.misses)] {
            let counter = self.inner.cache_lookups.with_label_values(&[result]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.inner.pool_waiting.set(i64::try_from(pool.waiting).unwrap_or(i64::MAX));
        let open = i64::from(pool.open);
        let idle = i64::try_from(pool.idle).unwrap_or(i64::MAX).min(open);
        self.inner.pool_connections.with_label_values(&["idle"]).set(idle);
        self.inner.pool_connections.with_label_values(&["in_use"]).set(open - idle);
        self.inner.pool_max_connections.set(i64::from(pool.max));
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.inner.registry.gather(), &mut text).expect("text encoding");
        String::from_utf8(text).expect("the text format is UTF-8")
    }
}

pub fn outcome_name(outcome: PublishOutcome) -> &'static str {
    match outcome {
        PublishOutcome::Created => "created",
        PublishOutcome::AlreadyPublished => "already_published",
        PublishOutcome::LostRace => "lost_race",
        PublishOutcome::Joined => "joined",
    }
}

/// The status code's name as in the gRPC specification.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

async fn scrape(State((metrics, store, app)): State<(Metrics, Store, App)>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], metrics.render(store.pool_stats(), &app))
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    store: Store,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local_addr = listener.local_addr().context("reading the metrics address")?;
    tracing::info!(%local_addr, "serving metrics on /metrics");
    let router = Router::new().route("/metrics", get(scrape)).with_state((metrics, store, app));
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("serving metrics")
}
