//! Observes every call, outermost of all layers so that it also sees calls
//! refused by authentication or the limits: one tracing span per call, and
//! the call metrics.
//!
//! The span carries `method`, `code` and `latency_ms`, recorded here,
//! `caller`, which authentication records (a label, never a secret), and
//! `organization_id`, `draft_id`, `event_id` and `outcome`, which the
//! handlers record into it (see `api`). One `call finished` event closes it.
//!
//! In traces (see `telemetry::traces`) the same span is the server span:
//! named `<service>/<method>`, with the gRPC semantic-convention attributes,
//! and the child of the caller's span when the metadata carries a W3C
//! `traceparent`.
//!
//! The status code is read from the answer's headers: a unary call that fails
//! is answered with its status there ("trailers-only"), one that succeeds is
//! OK. For a stream (health Watch, reflection) code and latency describe how
//! it started.
//!
//! A call whose request the client broke at the HTTP/2 level, or that hyper
//! dropped because its stream was reset (see `stream_errors`), is not a call
//! the service answered: it is counted by its HTTP/2 error code instead, and
//! logged at DEBUG, not INFO.

use std::{
    sync::LazyLock,
    task::{Context, Poll},
    time::Instant,
};

use prost::Message;

use tonic::{
    Code, Status,
    body::Body,
    codegen::{BoxFuture, http},
};
use tower::{Layer, Service};
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::stream_errors::StreamError;
use crate::{
    app::{ChangesWritten, PublishOutcome},
    metrics::{Metrics, code_name},
    proto::v1 as pb,
    telemetry::traces,
};

/// Every method the server serves (`/package.Service/Method`), read from
/// the descriptor sets its services were generated from, so that a new RPC
/// needs no list updated. Any other path is labelled `unknown`, so that
/// callers cannot create metric series at will.
static METHODS: LazyLock<Vec<String>> = LazyLock::new(|| {
    [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .flat_map(|set| prost_types::FileDescriptorSet::decode(set).expect("generated descriptors decode").file)
    .flat_map(|file| {
        let package = file.package().to_owned();
        file.service.into_iter().flat_map(move |service| {
            let prefix = format!("/{package}.{}/", service.name());
            service.method.into_iter().map(move |method| format!("{prefix}{}", method.name()))
        })
    })
    .collect()
});

fn method_label(path: &str) -> &'static str {
    METHODS.iter().find(|m| *m == path).map_or("unknown", String::as_str)
}

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Metrics,
}

impl ObserveLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Metrics,
}

fn status_code<B>(response: &http::Response<B>) -> Code {
    match response.headers().get(Status::GRPC_STATUS) {
        Some(code) => Code::from_bytes(code.as_bytes()),
        None => Code::Ok,
    }
}

/// The codes that mark a server span as failed, by the gRPC semantic
/// conventions; the others are the caller's mistakes or expected answers.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

impl<S> Service<http::Request<Body>> for Observe<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = method_label(request.uri().path());
        // None for `unknown`: the attributes are then left out.
        let (service, rpc) = method.trim_start_matches('/').split_once('/').unzip();
        let span = tracing::info_span!(
            "grpc",
            otel.name = method.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = rpc,
            rpc.grpc.status_code = Empty,
            method = request.uri().path(),
            caller = Empty,
            organization_id = Empty,
            draft_id = Empty,
            event_id = Empty,
            outcome = Empty,
            code = Empty,
            latency_ms = Empty,
        );
        // Without traces this is a no-op: the span has no OpenTelemetry side.
        let _ = span.set_parent(traces::caller_context(request.headers()));
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let stream_error = StreamError::default();
        let request = request.map(|body| stream_error.watch(body));
        let answer = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let unanswered = stream_error.until_answered(metrics.clone());
                let answer = answer.await;
                unanswered.answered();
                let elapsed = started.elapsed();
                if let Some(reason) = stream_error.reason() {
                    metrics.observe_stream_error(reason);
                    tracing::debug!(http2_error = reason, "call broken by the client");
                    return answer;
                }
                // An error here is a transport failure: hyper resets the stream.
                let code = answer.as_ref().map_or(Code::Unknown, status_code);
                metrics.observe_call(method, code, elapsed);
                if let Some(outcome) =
                    answer.as_ref().ok().and_then(|a| a.extensions().get::<PublishOutcome>())
                {
                    metrics.observe_publish(*outcome);
                }
                if let Some(ChangesWritten(written)) =
                    answer.as_ref().ok().and_then(|a| a.extensions().get::<ChangesWritten>())
                {
                    metrics.observe_changes_written(*written);
                }
                let span = tracing::Span::current();
                span.record("code", code_name(code));
                span.record("rpc.grpc.status_code", code as i32);
                if is_server_error(code) {
                    span.record("otel.status_code", "error");
                }
                // Microsecond precision, without binary noise in the printed value.
                span.record("latency_ms", (elapsed.as_secs_f64() * 1e6).round() / 1e3);
                if method.starts_with("/grpc.health.") {
                    tracing::debug!("call finished");
                } else {
                    tracing::info!("call finished");
                }
                answer
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_every_served_method_and_nothing_else() {
        for path in [
            "/draftpublisher.v1.DraftPublisher/CreateDraft",
            "/draftpublisher.v1.DraftPublisher/PublishDraft",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(method_label(path), path);
        }
        assert_eq!(method_label("/draftpublisher.v1.DraftPublisher/Nope"), "unknown");
        assert_eq!(method_label("/grpc.health.v1.Health/"), "unknown");
    }
}
