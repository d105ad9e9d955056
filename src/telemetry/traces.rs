//! OpenTelemetry traces over OTLP/gRPC, configured only by the standard
//! `OTEL_*` variables and off when no endpoint is set.
//!
//! Spans leave through the SDK's batch processor: a bounded queue drained by
//! a thread of its own, so an absent or slow collector costs a call nothing
//! (spans beyond the queue are dropped, never waited for).

use anyhow::Context as _;
use opentelemetry::{global, propagation::Extractor, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tonic::codegen::http::HeaderMap;
use tracing::{Level, Subscriber};
use tracing_subscriber::{Layer, filter::Targets, registry::LookupSpan};

use crate::defaults::{TRACES_FLUSH_TIMEOUT, TRACES_SERVICE_NAME};

/// Where spans go; the signal-specific variable wins, as the exporter reads it.
const ENDPOINTS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The tracer provider of the process, when traces are on.
pub struct Traces {
    provider: SdkTracerProvider,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

impl Traces {
    /// The exporter the environment asks for, or `None` without an endpoint.
    /// Needs a Tokio runtime: the gRPC channel lives on it.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(endpoint) = ENDPOINTS.into_iter().find_map(env) else { return Ok(None) };
        // The exporter reads the endpoint, headers and timeout itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .with_context(|| format!("OTLP trace exporter for {endpoint}"))?;
        let service_name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| TRACES_SERVICE_NAME.to_owned());
        // The sampler comes from OTEL_TRACES_SAMPLER / _ARG (default
        // parentbased_always_on), the queue bound from OTEL_BSP_*.
        let provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .with_batch_exporter(exporter)
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Some(Self { provider }))
    }

    /// The layer turning this crate's spans into OpenTelemetry spans. Only
    /// the crate's own: spans of its libraries (sqlx, h2) and of the exporter
    /// itself stay out of traces.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("draft-publisher"))
            .with_threads(false)
            .with_filter(
                Targets::new()
                    .with_target("draft_publisher", Level::INFO)
                    // Statement and per-message spans are at DEBUG, so that
                    // logs at INFO do not create them for nothing.
                    .with_target("draft_publisher::store", Level::DEBUG)
                    .with_target("draft_publisher::relay", Level::DEBUG),
            )
    }

    /// Sends the spans still queued, waiting at most `TRACES_FLUSH_TIMEOUT`.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(TRACES_FLUSH_TIMEOUT)).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!("traces not flushed at shutdown: {error}");
        }
    }
}

/// The caller's trace context from a call's metadata (W3C `traceparent` and
/// `tracestate`), empty when it sent none or traces are off.
pub fn caller_context(metadata: &HeaderMap) -> opentelemetry::Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&Metadata(metadata)))
}

struct Metadata<'a>(&'a HeaderMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}
