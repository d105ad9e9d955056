//! The database going away under a running service, and coming back.

use std::time::{Duration, Instant};

use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::{
    health::{NAMES, SERVICE, ServingStatus, health_status},
    metrics,
    pg_cluster::{PgCluster, StopMode},
    wait::until_some,
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
    let recovered = until_some("served again without a restart", Duration::from_secs(30), || async {
        app.get_draft(draft.get_request()).await.ok()?.draft
    })
    .await;
    assert_eq!(recovered.id, draft.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_within_two_seconds_and_watch_streams_both_changes() {
    let cluster = PgCluster::start();
    let app = spawn_app_on(&cluster).await;
    let mut watch = app.watch_health(SERVICE).await;
    watch.until(ServingStatus::Serving, Duration::from_secs(30)).await;

    let stopping = Instant::now();
    cluster.stop(StopMode::Fast);
    watch.until(ServingStatus::NotServing, HEALTH_FOLLOWS_WITHIN.saturating_sub(stopping.elapsed())).await;
    for name in NAMES {
        assert_eq!(health_status(app.addr, name).await, ServingStatus::NotServing, "{name:?}");
    }

    cluster.start_again();
    watch.until(ServingStatus::Serving, HEALTH_FOLLOWS_WITHIN).await;
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
    assert_a_publish_held_past_the_statement_timeout_is_unavailable(&app).await;
}

/// A publish held on a row lock past a short statement timeout (the
/// server's, 300 ms): UNAVAILABLE within 5 s, and no event left behind.
pub async fn assert_a_publish_held_past_the_statement_timeout_is_unavailable(app: &TestApp) {
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;

    let started = Instant::now();
    let status = app.publish(&draft.organization_id, &draft.id).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    holder.rollback().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0, "the cancelled publish left an event");
}

/// Published drafts and events never change, so a repeated PublishDraft and
/// GetEvent are answered from memory — even with the database down — while
/// anything not yet published, or another organisation's, still needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_of_published_drafts_are_answered_without_the_database() {
    let cluster = PgCluster::start();
    let app = spawn_app_on(&cluster).await;
    let org = new_id();
    let published = app.complete_draft(&org).await;
    let first = app.publish(&org, &published.id).await.unwrap();
    let unpublished = app.complete_draft(&org).await;

    cluster.stop(StopMode::Fast);

    let repeat = app.publish(&org, &published.id).await.expect("answered from memory");
    assert!(repeat.already_published);
    assert_eq!(repeat.event_id, first.event_id);
    assert_eq!(repeat.event.unwrap().status(), pb::EventStatus::Published);
    assert_eq!(app.fetch_event(&org, &first.event_id).await.id, first.event_id);
    let fresh = app.publish(&org, &unpublished.id).await.unwrap_err();
    assert_error(&fresh, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let other = new_id();
    let foreign = app.publish(&other, &published.id).await.unwrap_err();
    assert_error(&foreign, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let foreign_event = app.get_event(get_event_request(&other, &first.event_id)).await.unwrap_err();
    assert_error(&foreign_event, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let hits = metrics::metric_value(
        app.metrics_addr,
        "draftpublisher_published_cache_lookups_total",
        &[("result", "hit")],
    )
    .await;
    assert_eq!(hits, Some(2.0));
}
