//! The network between the service and PostgreSQL breaking, through a
//! fault-injecting proxy: a publish whose connection is cut around its
//! commit (the ambiguous commit), and connections left half-open.

use std::{
    net::SocketAddr,
    str::FromStr,
    time::{Duration, Instant},
};

use sqlx::postgres::PgConnectOptions;
use tonic::Code;

use crate::support::{
    database::server_url,
    fault_proxy::{CommitCut, FaultProxy},
    *,
};

/// The statement timeout of these tests' servers.
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(500);
/// The documented bound on a call over a connection that stopped answering:
/// the statement timeout plus the store's 1 s grace; plus slack for a
/// loaded machine.
const FAILS_WITHIN: Duration = Duration::from_millis(500 + 1_000 + 1_500);

/// The address of the tests' PostgreSQL server.
fn database_addr() -> SocketAddr {
    let options = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
    let host = if options.get_host() == "localhost" { "127.0.0.1" } else { options.get_host() };
    SocketAddr::new(host.parse().expect("an IP address"), options.get_port())
}

async fn app_through(proxy: &FaultProxy) -> TestApp {
    TestApp::builder()
        .through_proxy(proxy)
        .pool(|pool| {
            pool.statement_timeout = STATEMENT_TIMEOUT;
            pool.acquire_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_cut_after_its_commit_is_unavailable_and_its_retry_returns_that_event() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = app_through(&proxy).await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;

    proxy.cut_next_publish(CommitCut::AfterCommit);
    let status = app.publish(&org, &draft.id).await.unwrap_err();

    assert_eq!(proxy.publishes_cut(), 1, "the publish's connection was cut");
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let committed: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM events").fetch_all(&app.db).await.unwrap();
    assert_eq!(committed.len(), 1, "the commit happened although its answer was lost");
    let retry = app.publish(&org, &draft.id).await.expect("the retry answers OK");
    assert!(retry.already_published, "the retry found the committed event");
    assert_eq!(retry.event_id, committed[0].to_string());
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_cut_before_its_commit_is_unavailable_and_its_retry_creates_the_event() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = app_through(&proxy).await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;

    proxy.cut_next_publish(CommitCut::BeforeCommit);
    let status = app.publish(&org, &draft.id).await.unwrap_err();

    assert_eq!(proxy.publishes_cut(), 1, "the publish's connection was cut");
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0, "nothing committed");
    let retry = app.publish(&org, &draft.id).await.expect("the retry answers OK");
    assert!(!retry.already_published, "the retry created the event");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(app.fetch_draft(&org, &draft.id).await.event_id, retry.event_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_half_open_connections_fail_within_the_bound_and_the_pool_recovers() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = app_through(&proxy).await;
    let org = new_id();
    // Several connections open and idle in the pool.
    let drafts = futures::future::join_all((0..4).map(|_| app.complete_draft(&org))).await;
    wait::until("connections idle in the pool", Duration::from_secs(10), || async {
        let text = metrics::scrape_text(app.metrics_addr).await;
        let idle = metrics::sample(&text, "draftpublisher_db_pool_connections", &[("state", "idle")]);
        let in_use = metrics::sample(&text, "draftpublisher_db_pool_connections", &[("state", "in_use")]);
        idle.is_some_and(|idle| idle >= 1.0) && in_use == Some(0.0)
    })
    .await;

    proxy.half_open();
    let mut failures = 0;
    for draft in &drafts {
        let started = Instant::now();
        let answer = app.get_draft(get_draft_request(&org, &draft.id)).await;
        let took = started.elapsed();

        assert!(took < FAILS_WITHIN, "a call took {took:?} on a half-open connection");
        if let Err(status) = answer {
            assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
            failures += 1;
        }
    }
    assert!(failures > 0, "no call used a half-open connection");

    // Without a restart: new connections replace the dead ones.
    wait::until("calls answer again", Duration::from_secs(10), || async {
        app.get_draft(get_draft_request(&org, &drafts[0].id)).await.is_ok()
    })
    .await;
    for draft in &drafts {
        app.publish(&org, &draft.id).await.expect("publish answers OK after recovery");
    }
    assert_eq!(app.count("SELECT count(*) FROM events").await, drafts.len() as i64);
}
