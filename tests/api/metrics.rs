//! Prometheus metrics on their own HTTP listener, scraped after real calls.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;

use crate::support::{health::SERVICE, locks, metrics::*, wait::until_reads, *};

/// The `method` label of one of the service's RPCs.
fn method(name: &str) -> String {
    format!("/{SERVICE}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_and_code_and_publish_outcomes() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let created = app.complete_draft(&org).await;
    let raced = app.complete_draft(&org).await;
    app.publish(&org, &created.id).await.unwrap();
    app.publish(&org, &created.id).await.unwrap();
    app.get_draft(get_draft_request(&org, &new_id())).await.unwrap_err();
    // A publish that loses to a concurrent one on the constraint.
    let (rival, _) = app.rival_publish(&raced.id).await;
    let loser = app.publish_in_background(&raced);
    app.until_calls_wait_on_locks(1).await;
    rival.commit().await.unwrap();
    assert!(loser.await.unwrap().unwrap().already_published);

    let text = scrape_text(app.metrics_addr).await;

    let calls = "draftpublisher_grpc_calls_total";
    assert_sample(&text, calls, &[("method", &method("CreateDraft")), ("code", "OK")], 2.0);
    assert_sample(&text, calls, &[("method", &method("PublishDraft")), ("code", "OK")], 3.0);
    assert_sample(&text, calls, &[("method", &method("GetDraft")), ("code", "NOT_FOUND")], 1.0);
    let latency = "draftpublisher_grpc_call_duration_seconds_count";
    assert_sample(&text, latency, &[("method", &method("PublishDraft"))], 3.0);
    let outcomes = "draftpublisher_publish_outcomes_total";
    assert_sample(&text, outcomes, &[("outcome", "created")], 1.0);
    assert_sample(&text, outcomes, &[("outcome", "already_published")], 1.0);
    assert_sample(&text, outcomes, &[("outcome", "lost_race")], 1.0);
    assert_sample(&text, "draftpublisher_db_pool_max_connections", &[], 16.0);
}

#[tokio::test]
async fn unknown_methods_share_one_label() {
    let app = TestApp::spawn().await;
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.unwrap();

    let path = format!("/{SERVICE}/NoSuchMethod").parse().unwrap();
    let codec = tonic_prost::ProstCodec::<pb::GetDraftRequest, pb::GetDraftResponse>::default();
    let status =
        grpc.unary(tonic::Request::new(pb::GetDraftRequest::default()), path, codec).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let text = scrape_text(app.metrics_addr).await;
    assert_sample(
        &text,
        "draftpublisher_grpc_calls_total",
        &[("method", "unknown"), ("code", "UNIMPLEMENTED")],
        1.0,
    );
    assert!(!text.contains("NoSuchMethod"), "{text}");
}

/// The pool's gauges: connections idle and in use, calls waiting for one,
/// and the configured size.
#[derive(Debug, PartialEq)]
struct Pool {
    idle: f64,
    in_use: f64,
    waiting: f64,
    max: f64,
}

async fn pool_gauges(app: &TestApp) -> Pool {
    let text = scrape_text(app.metrics_addr).await;
    let gauge = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };
    let connections = "draftpublisher_db_pool_connections";
    Pool {
        idle: gauge(connections, &[("state", "idle")]),
        in_use: gauge(connections, &[("state", "in_use")]),
        waiting: gauge("draftpublisher_db_pool_waiting_calls", &[]),
        max: gauge("draftpublisher_db_pool_max_connections", &[]),
    }
}

/// Scrapes until the gauges read `wanted`: a connection goes back to the
/// pool on a task of its own, just after its call answered.
async fn until_pool_reads(app: &TestApp, wanted: Pool) {
    until_reads("pool gauges", Duration::from_secs(10), wanted, || pool_gauges(app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_gauges_count_busy_idle_and_waiting_connections_exactly() {
    const SIZE: usize = 3;
    let app = TestApp::builder()
        .pool(|pool| (pool.max_connections, pool.acquire_timeout) = (SIZE as u32, Duration::from_secs(30)))
        .spawn()
        .await;
    let org = new_id();
    let mut drafts = Vec::new();
    for _ in 0..SIZE + 2 {
        drafts.push(app.complete_draft(&org).await);
    }
    // Every connection stays busy: its publish waits on its draft's row.
    let ids: Vec<&str> = drafts.iter().map(|d| d.id.as_str()).collect();
    let holder = locks::hold_drafts(&app.db, &ids).await;
    let busy: Vec<_> = drafts[..SIZE].iter().map(|d| app.publish_in_background(d)).collect();
    app.until_calls_wait_on_locks(SIZE).await;

    let all_busy = pool_gauges(&app).await;
    let queued: Vec<_> = drafts[SIZE..].iter().map(|d| app.publish_in_background(d)).collect();
    until_pool_reads(&app, Pool { idle: 0.0, in_use: 3.0, waiting: 2.0, max: 3.0 }).await;
    holder.commit().await.unwrap();
    let mut created = 0;
    for call in busy.into_iter().chain(queued) {
        created += usize::from(!call.await.unwrap().expect("a held publish finishes").already_published);
    }

    assert_eq!(all_busy, Pool { idle: 0.0, in_use: 3.0, waiting: 0.0, max: 3.0 });
    assert_eq!(created, SIZE + 2, "each publish created its event");
    until_pool_reads(&app, Pool { idle: 3.0, in_use: 0.0, waiting: 0.0, max: 3.0 }).await;
}
