//! Prometheus metrics on their own HTTP listener, scraped after real calls.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;

use crate::support::{health::SERVICE, metrics::*, *};

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
    let idle = sample(&text, "draftpublisher_db_pool_connections", &[("state", "idle")]).unwrap();
    let in_use = sample(&text, "draftpublisher_db_pool_connections", &[("state", "in_use")]).unwrap();
    assert!(idle + in_use >= 1.0 && idle + in_use <= 16.0, "idle {idle}, in use {in_use}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_a_database_connection_are_counted() {
    let app = TestApp::builder()
        .pool(|pool| (pool.max_connections, pool.acquire_timeout) = (1, Duration::from_secs(30)))
        .spawn()
        .await;
    let draft = app.complete_draft(&new_id()).await;
    // The only connection stays busy: its publish waits on the draft's row.
    let blocker = app.hold_draft(&draft.id).await;
    let first = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;

    let queued = [app.publish_in_background(&draft), app.publish_in_background(&draft)];
    let mut waiting = 0.0;
    for _ in 0..500 {
        let text = scrape_text(app.metrics_addr).await;
        waiting = sample(&text, "draftpublisher_db_pool_waiting_calls", &[]).unwrap();
        if waiting == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, 2.0, "two calls queue for the one connection");

    blocker.commit().await.unwrap();
    first.await.unwrap().expect("the first publish finishes");
    for call in queued {
        assert!(call.await.unwrap().expect("a queued publish finishes").already_published);
    }
    let text = scrape_text(app.metrics_addr).await;
    assert_sample(&text, "draftpublisher_db_pool_waiting_calls", &[], 0.0);
}
