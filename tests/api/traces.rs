//! Traces: the `draft-publisher` binary, run as operators run it with the
//! standard `OTEL_*` variables (the tracer provider is process-wide, so the
//! server runs as a process of its own), sending spans to a fake collector.

use std::{
    net::SocketAddr,
    process::{Child, ExitStatus},
    time::{Duration, Instant},
};

use tonic::{Request, metadata::MetadataValue};

use crate::support::{
    binary,
    collector::{Collector, ReceivedSpan, SilentCollector},
    database,
    health::{self, ServingStatus},
    nats::NatsServer,
    net, wait, *,
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
const TOKEN: &str = "s3cr3t-trace-token-0123456789";
const SERVER_KIND: i32 = 2;
const PRODUCER_KIND: i32 = 4;

/// A `draft-publisher serve` process exporting traces to `endpoint`, killed
/// when dropped.
struct Traced {
    child: Child,
    addr: SocketAddr,
    _database: TestDatabase,
}

impl Traced {
    async fn serve(endpoint: &str) -> Self {
        Self::serve_with(endpoint, &[]).await
    }

    async fn serve_with(endpoint: &str, args: &[&str]) -> Self {
        let database = TestDatabase::new();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = binary::command(&database.url)
            .args(["serve", "--listen-addr", &addr.to_string()])
            .args(args)
            .env("DRAFT_PUBLISHER_AUTH_TOKENS", TOKEN)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_TRACES_SAMPLER")
            .spawn()
            .expect("serve starts");
        wait::until("health SERVING", Duration::from_secs(20), || async {
            matches!(health::check(net::lazy_channel(addr), "").await, Ok(ServingStatus::Serving))
        })
        .await;
        Self { child, addr, _database: database }
    }

    async fn client(&self) -> TestClient {
        TestClient::with_authorization(net::channel(self.addr).await, &format!("Bearer {TOKEN}"))
    }

    /// SIGTERM, then the exit status (within `within`).
    async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        wait::until_some("serve exits", within, || std::future::ready(self.child.try_wait().unwrap())).await
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_traceparent<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    request.metadata_mut().insert("traceparent", MetadataValue::try_from(traceparent).unwrap());
    request
}

fn assert_no_secret(spans: &[ReceivedSpan], secrets: &[&str]) {
    for span in spans {
        for value in span.attribute_values() {
            for secret in secrets {
                assert!(!value.contains(secret), "span {} carries {secret:?}: {value:?}", span.name());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_traceparent_is_a_server_span_in_the_callers_trace_with_database_spans() {
    let collector = Collector::start().await;
    let mut server = Traced::serve(&collector.endpoint()).await;
    let client = server.client().await;
    let mut draft = complete_draft_request(&new_id());
    draft.title = "Quarterly plans, confidential".to_owned();

    client.create_draft(with_traceparent(draft)).await.expect("CreateDraft answers OK");
    // The batch is sent at shutdown at the latest.
    assert!(server.terminate(Duration::from_secs(20)).await.success());

    let span =
        collector.span_named("draftpublisher.v1.DraftPublisher/CreateDraft", Duration::from_secs(5)).await;
    assert_eq!(span.trace_id(), TRACE_ID);
    assert_eq!(span.parent_span_id(), CALLER_SPAN_ID);
    assert_eq!(span.span.kind, SERVER_KIND);
    assert_eq!(span.service_name, "draft-publisher");
    assert_eq!(span.attribute("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(span.attribute("rpc.service").as_deref(), Some("draftpublisher.v1.DraftPublisher"));
    assert_eq!(span.attribute("rpc.method").as_deref(), Some("CreateDraft"));
    assert_eq!(span.attribute("rpc.grpc.status_code").as_deref(), Some("0"));
    let statements: Vec<_> =
        collector.spans().into_iter().filter(|s| s.parent_span_id() == span.span_id()).collect();
    assert!(!statements.is_empty(), "no database span under {}", span.name());
    for statement in &statements {
        assert_eq!(statement.trace_id(), TRACE_ID);
        assert_eq!(statement.name(), "create_draft");
        assert_eq!(statement.attribute("db.system").as_deref(), Some("postgresql"));
        assert_eq!(statement.attribute("db.operation.name").as_deref(), Some("create_draft"));
    }
    assert_no_secret(&collector.spans(), &[TOKEN, "confidential", "Talks and pizza"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_traceparent_starts_a_trace_and_records_its_status() {
    let collector = Collector::start().await;
    let server = Traced::serve(&collector.endpoint()).await;
    let client = server.client().await;

    let refused = client.get_draft(get_draft_request(&new_id(), &new_id())).await.unwrap_err();

    let span =
        collector.span_named("draftpublisher.v1.DraftPublisher/GetDraft", Duration::from_secs(15)).await;
    assert_eq!(span.attribute("rpc.grpc.status_code"), Some((refused.code() as i32).to_string()));
    assert_eq!(span.parent_span_id(), "");
    assert_ne!(span.trace_id(), TRACE_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nats_publish_is_a_producer_span_under_its_relay_batch() {
    let collector = Collector::start().await;
    let nats = NatsServer::start().await;
    let server = Traced::serve_with(&collector.endpoint(), &["--nats-url", &nats.url]).await;
    let client = server.client().await;
    let org = new_id();
    let draft = client.complete_draft(&org).await;
    client.publish(&org, &draft.id).await.expect("PublishDraft answers OK");
    let message = nats.until_messages(&org, 1).await.remove(0);
    let id = message.headers["Nats-Msg-Id"].clone();

    let publish = wait::until_some("the publish span received", Duration::from_secs(15), || {
        let spans = collector.spans();
        std::future::ready(
            spans.into_iter().find(|s| s.attribute("messaging.message.id").as_deref() == Some(id.as_str())),
        )
    })
    .await;
    let relay = collector.span_named("relay", Duration::from_secs(5)).await;
    assert_eq!(publish.name(), "send draftpublisher.v1.events");
    assert_eq!(publish.parent_span_id(), relay.span_id());
    assert_eq!(publish.span.kind, PRODUCER_KIND);
    assert_eq!(publish.attribute("messaging.system").as_deref(), Some("nats"));
    assert_eq!(publish.attribute("messaging.destination.name"), Some(message.subject));
    assert_no_secret(&collector.spans(), &[TOKEN, "Talks and pizza"]);
}

/// An unreachable collector (nothing listening) and one that never answers:
/// the calls answer as without traces, and shutdown still ends, its flush
/// bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_or_silent_collector_changes_no_answer() {
    let silent = SilentCollector::start();
    let absent = format!("http://127.0.0.1:{}", free_port());
    for endpoint in [absent, silent.endpoint()] {
        let mut server = Traced::serve(&endpoint).await;
        let client = server.client().await;
        let org = new_id();

        let started = Instant::now();
        for _ in 0..20 {
            let draft = client.complete_draft(&org).await;
            let published = client.publish(&org, &draft.id).await.expect("PublishDraft answers OK");
            assert!(!published.already_published, "{endpoint}");
        }
        let elapsed = started.elapsed();

        assert!(elapsed < Duration::from_secs(5), "{endpoint}: 40 calls took {elapsed:?}");
        let stopping = Instant::now();
        assert!(server.terminate(Duration::from_secs(20)).await.success(), "{endpoint}");
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "{endpoint}: shutdown took {:?}",
            stopping.elapsed()
        );
    }
}

#[test]
fn an_endpoint_the_exporter_cannot_use_stops_start_up_naming_the_variable() {
    for endpoint in ["not a url", "https://127.0.0.1:4317"] {
        let output = binary::command(database::UNREACHABLE_DATABASE_URL)
            .args(["serve", "--listen-addr", "127.0.0.1:0"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .output()
            .expect("draft-publisher runs");

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{endpoint}: {stderr}");
        assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{endpoint}: {stderr}");
    }
}
