//! A fake OpenTelemetry collector: an OTLP/gRPC trace receiver on a free
//! port of 127.0.0.1 that records every span it is sent, and a silent one
//! that accepts connections and never answers.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value},
    trace::v1::Span,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{Request, Response, Status};

use crate::support::wait;

/// A span as the collector received it, with its resource's service name.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub service_name: String,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The attribute `key`, as text (integers in decimal).
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).map(text)
    }

    /// Every attribute value of the span and of its events, as text.
    pub fn attribute_values(&self) -> Vec<String> {
        let events = self.span.events.iter().flat_map(|e| &e.attributes);
        self.span.attributes.iter().chain(events).filter_map(|a| a.value.as_ref()).map(text).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Recorder {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(text)
                .unwrap_or_default();
            let spans = resource_spans.scope_spans.into_iter().flat_map(|s| s.spans);
            received.extend(spans.map(|span| ReceivedSpan { service_name: service_name.clone(), span }));
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The receiving collector; stopped when dropped.
pub struct Collector {
    pub addr: SocketAddr,
    received: Recorder,
    task: JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Recorder::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let task = tokio::spawn(async move { server.await.expect("collector serves") });
        Self { addr, received, task }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.0.lock().unwrap().clone()
    }

    /// The first span named `name`, once it has arrived (within `within`).
    pub async fn span_named(&self, name: &str, within: Duration) -> ReceivedSpan {
        let what = format!("span {name} received");
        wait::until_some(&what, within, || {
            std::future::ready(self.spans().into_iter().find(|s| s.name() == name))
        })
        .await
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A collector that accepts TCP connections and never says a word: every
/// export waits for its timeout. Kept open while it lives.
pub struct SilentCollector {
    pub addr: SocketAddr,
    _listener: std::net::TcpListener,
}

impl SilentCollector {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self { addr: listener.local_addr().unwrap(), _listener: listener }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}
