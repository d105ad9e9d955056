//! The database going away under a running service, and coming back.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use draft_publisher::{
    App, PoolSettings, SystemClock, prepare_database, proto::v1 as pb, server::ServerSettings,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};

use crate::{
    helpers::*,
    support::pg_cluster::{PgCluster, StopMode},
};

const SERVICE: &str = "draftpublisher.v1.DraftPublisher";

/// The real server on a database of `cluster`.
async fn spawn_server_on(
    cluster: &PgCluster,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let store = prepare_database(&cluster.url("draft_publisher"), &PoolSettings::default()).await.unwrap();
    spawn_server(App::new(store.clone(), Arc::new(SystemClock)), store, ServerSettings::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_database_fails_fast_and_the_service_recovers_when_it_returns() {
    let cluster = PgCluster::start();
    let (addr, _shutdown, _server) = spawn_server_on(&cluster).await;
    let mut client = connect(addr).await;
    let org = new_id();
    let draft = client.create_draft(complete_draft_request(&org)).await.unwrap().into_inner().draft.unwrap();
    let get = pb::GetDraftRequest { organization_id: org.clone(), draft_id: draft.id.clone() };

    cluster.stop(StopMode::Fast);
    let started = Instant::now();
    let status = client.get_draft(get.clone()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let status = client
        .publish_draft(pb::PublishDraftRequest {
            organization_id: org.clone(),
            draft_id: draft.id.clone(),
            publish_at: None,
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");

    cluster.start_again();
    let mut recovered = None;
    for _ in 0..500 {
        if let Ok(answer) = client.get_draft(get.clone()).await {
            recovered = answer.into_inner().draft;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recovered.expect("served again without a restart").id, draft.id);
}

/// The next status `watch` streams, waiting until `deadline` at most.
async fn next_status(
    watch: &mut tonic::Streaming<HealthCheckResponse>,
    deadline: Instant,
) -> Option<ServingStatus> {
    let next = tokio::time::timeout_at(deadline.into(), watch.next()).await.ok()??;
    Some(next.expect("watch stream item").status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_within_two_seconds_and_watch_streams_both_changes() {
    let cluster = PgCluster::start();
    let (addr, _shutdown, _server) = spawn_server_on(&cluster).await;
    let mut watch = HealthClient::new(channel(addr).await)
        .watch(HealthCheckRequest { service: SERVICE.to_owned() })
        .await
        .unwrap()
        .into_inner();
    let start_up = Instant::now() + Duration::from_secs(30);
    while next_status(&mut watch, start_up).await != Some(ServingStatus::Serving) {}

    let stopping = Instant::now();
    cluster.stop(StopMode::Fast);
    let status = next_status(&mut watch, stopping + Duration::from_secs(2)).await;
    assert_eq!(status, Some(ServingStatus::NotServing), "after {:?}", stopping.elapsed());
    assert_eq!(health_status(addr, SERVICE).await, ServingStatus::NotServing);
    assert_eq!(health_status(addr, "").await, ServingStatus::NotServing);

    cluster.start_again();
    let back = Instant::now();
    let status = next_status(&mut watch, back + Duration::from_secs(2)).await;
    assert_eq!(status, Some(ServingStatus::Serving), "after {:?}", back.elapsed());
    assert_eq!(health_status(addr, "").await, ServingStatus::Serving);
}

/// A call waiting on a row lock keeps the pool's only connection busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_unavailable_after_the_acquire_timeout() {
    let pool = PoolSettings {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(500),
        ..PoolSettings::default()
    };
    let app = spawn_app_with_pool(pool, ServerSettings::default()).await;
    let draft = app.complete_draft(&new_id()).await;
    let blocker = app.hold_draft(&draft.id).await;
    let in_flight = app.publish_in_background(&draft);
    app.until_a_call_waits_on_a_lock().await;

    let started = Instant::now();
    let get =
        pb::GetDraftRequest { organization_id: draft.organization_id.clone(), draft_id: draft.id.clone() };
    let status = app.client.clone().get_draft(get).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    blocker.commit().await.unwrap();
    in_flight.await.unwrap().expect("the call holding the connection finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_statement_timeout_is_unavailable() {
    let pool = PoolSettings { statement_timeout: Duration::from_millis(300), ..PoolSettings::default() };
    let app = spawn_app_with_pool(pool, ServerSettings::default()).await;
    let draft = app.complete_draft(&new_id()).await;
    let blocker = app.hold_draft(&draft.id).await;

    let started = Instant::now();
    let status = app.publish(&draft.organization_id, &draft.id).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    blocker.rollback().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0, "the cancelled publish left an event");
}
