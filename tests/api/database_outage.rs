//! The database going away under a running service, and coming back.

use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_client::HealthClient};

use crate::support::{
    health::{NAMES, SERVICE, ServingStatus, health_status},
    pg_cluster::{PgCluster, StopMode},
    *,
};

/// The contract: health follows the database within 2 s either way.
const HEALTH_FOLLOWS_WITHIN: Duration = Duration::from_secs(2);

/// The real server on a database of a private cluster, which the test may
/// stop and start.
async fn spawn_app_on(cluster: &PgCluster) -> TestApp {
    TestApp::builder().database_url(&cluster.url("draft_publisher")).spawn().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_database_fails_fast_and_the_service_recovers_when_it_returns() {
    let cluster = PgCluster::start();
    let app = spawn_app_on(&cluster).await;
    let draft = app.complete_draft(&new_id()).await;

    cluster.stop(StopMode::Fast);
    let started = Instant::now();
    let status = app.get_draft(draft.get_request()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let status = app.publish_draft(draft.publish_request()).await.unwrap_err();
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");

    cluster.start_again();
    let mut recovered = None;
    for _ in 0..500 {
        if let Ok(answer) = app.get_draft(draft.get_request()).await {
            recovered = answer.draft;
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
    let app = spawn_app_on(&cluster).await;
    let mut watch = HealthClient::new(app.channel().await)
        .watch(HealthCheckRequest { service: SERVICE.to_owned() })
        .await
        .unwrap()
        .into_inner();
    let start_up = Instant::now() + Duration::from_secs(30);
    while next_status(&mut watch, start_up).await != Some(ServingStatus::Serving) {}

    let stopping = Instant::now();
    cluster.stop(StopMode::Fast);
    let status = next_status(&mut watch, stopping + HEALTH_FOLLOWS_WITHIN).await;
    assert_eq!(status, Some(ServingStatus::NotServing), "after {:?}", stopping.elapsed());
    for name in NAMES {
        assert_eq!(health_status(app.addr, name).await, ServingStatus::NotServing, "{name:?}");
    }

    cluster.start_again();
    let back = Instant::now();
    let status = next_status(&mut watch, back + HEALTH_FOLLOWS_WITHIN).await;
    assert_eq!(status, Some(ServingStatus::Serving), "after {:?}", back.elapsed());
    assert_eq!(health_status(app.addr, "").await, ServingStatus::Serving);
}

/// A call waiting on a row lock keeps the pool's only connection busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_unavailable_after_the_acquire_timeout() {
    let app = TestApp::builder()
        .pool(|pool| (pool.max_connections, pool.acquire_timeout) = (1, Duration::from_millis(500)))
        .spawn()
        .await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;
    let in_flight = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;

    let started = Instant::now();
    let status = app.get_draft(draft.get_request()).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    holder.commit().await.unwrap();
    in_flight.await.unwrap().expect("the call holding the connection finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_statement_timeout_is_unavailable() {
    let app =
        TestApp::builder().pool(|pool| pool.statement_timeout = Duration::from_millis(300)).spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;

    let started = Instant::now();
    let status = app.publish(&draft.organization_id, &draft.id).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    holder.rollback().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0, "the cancelled publish left an event");
}
