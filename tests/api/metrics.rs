//! Prometheus metrics on their own HTTP listener, scraped after real calls.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use draft_publisher::{PoolSettings, proto::v1 as pb, server::ServerSettings};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

const SERVICE: &str = "/draftpublisher.v1.DraftPublisher";

/// `GET /metrics` over plain HTTP/1.1: the status line and the body.
async fn scrape(addr: SocketAddr) -> (String, String) {
    let mut connection = TcpStream::connect(addr).await.unwrap();
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    connection.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let found: BTreeMap<_, _> = series_labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let matches = series_name == name && labels.iter().all(|(k, v)| found.get(k) == Some(v));
        matches.then(|| value.parse().unwrap())
    })
}

#[track_caller]
fn assert_sample(text: &str, name: &str, labels: &[(&str, &str)], expected: f64) {
    assert_eq!(sample(text, name, labels), Some(expected), "{name} {labels:?} in:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_and_code_and_publish_outcomes() {
    let app = spawn_app().await;
    let org = new_id();
    let created = app.complete_draft(&org).await;
    let raced = app.complete_draft(&org).await;
    app.publish(&org, &created.id).await.unwrap();
    app.publish(&org, &created.id).await.unwrap();
    let missing = pb::GetDraftRequest { organization_id: org.clone(), draft_id: new_id() };
    app.client.clone().get_draft(missing).await.unwrap_err();
    // A publish that loses to a concurrent one on the constraint.
    let (rival, _) = app.rival_publish(&raced.id).await;
    let loser = app.publish_in_background(&raced);
    app.until_a_call_waits_on_a_lock().await;
    rival.commit().await.unwrap();
    assert!(loser.await.unwrap().unwrap().already_published);

    let (status_line, text) = scrape(app.metrics_addr).await;

    assert_eq!(status_line, "HTTP/1.1 200 OK");
    let calls = "draftpublisher_grpc_calls_total";
    assert_sample(&text, calls, &[("method", &format!("{SERVICE}/CreateDraft")), ("code", "OK")], 2.0);
    assert_sample(&text, calls, &[("method", &format!("{SERVICE}/PublishDraft")), ("code", "OK")], 3.0);
    assert_sample(&text, calls, &[("method", &format!("{SERVICE}/GetDraft")), ("code", "NOT_FOUND")], 1.0);
    let latency = "draftpublisher_grpc_call_duration_seconds_count";
    assert_sample(&text, latency, &[("method", &format!("{SERVICE}/PublishDraft"))], 3.0);
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
    let app = spawn_app().await;
    let mut grpc = tonic::client::Grpc::new(channel(app.addr).await);
    grpc.ready().await.unwrap();

    let path = "/draftpublisher.v1.DraftPublisher/NoSuchMethod".parse().unwrap();
    let codec = tonic_prost::ProstCodec::<pb::GetDraftRequest, pb::GetDraftResponse>::default();
    let status =
        grpc.unary(tonic::Request::new(pb::GetDraftRequest::default()), path, codec).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let (_, text) = scrape(app.metrics_addr).await;
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
    let pool =
        PoolSettings { max_connections: 1, acquire_timeout: Duration::from_secs(30), ..Default::default() };
    let app = spawn_app_with_pool(pool, ServerSettings::default()).await;
    let draft = app.complete_draft(&new_id()).await;
    // The only connection stays busy: its publish waits on the draft's row.
    let blocker = app.hold_draft(&draft.id).await;
    let first = app.publish_in_background(&draft);
    app.until_a_call_waits_on_a_lock().await;

    let queued = [app.publish_in_background(&draft), app.publish_in_background(&draft)];
    let mut waiting = 0.0;
    for _ in 0..500 {
        let (_, text) = scrape(app.metrics_addr).await;
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
    let (_, text) = scrape(app.metrics_addr).await;
    assert_sample(&text, "draftpublisher_db_pool_waiting_calls", &[], 0.0);
}
