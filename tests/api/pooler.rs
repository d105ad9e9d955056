//! Behind a transaction pooler (`--db-pooler transaction`): a private
//! PgBouncer in transaction mode between the server and PostgreSQL, which
//! keeps no session state across transactions and refuses the `options`
//! startup parameter. The same guarantees hold there.

use std::{net::SocketAddr, process::Child, time::Duration};

use draft_publisher::proto::v1 as pb;
use sqlx::{Connection, Row};

use crate::{
    races::{assert_invariants, concurrent_publishers_race},
    support::{
        binary,
        database::{UNREACHABLE_DATABASE_URL, with_database},
        health::{self, ServingStatus},
        net,
        pgbouncer::PgBouncer,
        *,
    },
};

/// A `draft-publisher serve` process, killed when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_migrate_directly_then_serve_through_the_pooler() {
    let pooler = PgBouncer::start();
    let database = TestDatabase::new();
    let migrated = binary::command(&database.url).arg("migrate").status().expect("migrate runs");
    assert!(migrated.success(), "migrate failed");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));

    let _serving = Serving(
        binary::command(&with_database(&pooler.url("postgres"), database.name()))
            .args(["serve", "--db-pooler", "transaction", "--skip-migrations"])
            .args(["--listen-addr", &addr.to_string()])
            .spawn()
            .expect("serve starts"),
    );
    wait::until("health SERVING", Duration::from_secs(20), || async {
        matches!(health::check(net::lazy_channel(addr), "").await, Ok(ServingStatus::Serving))
    })
    .await;
    let client = TestClient::connect(addr).await;
    let org = new_id();
    let draft = client.complete_draft(&org).await;
    let published = client.publish(&org, &draft.id).await.expect("publish answers OK");

    assert!(!published.already_published);
    assert_eq!(client.fetch_event(&org, &published.event_id).await.draft_id, draft.id);
}

#[test]
fn serving_through_a_transaction_pooler_needs_skip_migrations() {
    let output = binary::command(UNREACHABLE_DATABASE_URL)
        .args(["serve", "--db-pooler", "transaction", "--listen-addr", "127.0.0.1:0"])
        .output()
        .expect("serve runs");

    assert!(!output.status.success(), "serve started without --skip-migrations");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--skip-migrations"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_get_one_event_through_a_transaction_pooler() {
    let pooler = PgBouncer::start();
    let app = TestApp::builder().through_pooler(&pooler).spawn().await;

    concurrent_publishers_race(&app).await;
    assert_invariants(&app.db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_answers_through_a_transaction_pooler() {
    let pooler = PgBouncer::start();
    let app = TestApp::builder().through_pooler(&pooler).spawn().await;
    let org = new_id();

    let draft = app.complete_draft(&org).await;
    let published = app.publish(&org, &draft.id).await.expect("publish answers OK");
    let again = app.publish(&org, &draft.id).await.expect("a second publish answers OK");
    let event = app.fetch_event(&org, &published.event_id).await;
    let fetched = app.fetch_draft(&org, &draft.id).await;
    let listed = app
        .list_drafts(list_request(&org, 0, "", pb::DraftStatus::Unspecified))
        .await
        .expect("ListDrafts answers OK");

    assert!(again.already_published);
    assert_eq!(again.event_id, published.event_id);
    assert_eq!(event.id, published.event_id);
    assert_eq!(fetched.event_id, published.event_id);
    assert_eq!(listed.drafts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_leaves_no_prepared_statement_on_the_shared_server_connection() {
    // One server connection for every transaction: the service's calls, its
    // feed's sequencer and hub, its health probe, and this test's own
    // query, which so sees what the others left behind there.
    let pooler = PgBouncer::start_with_server_connections(1);
    let app = TestApp::builder().through_pooler(&pooler).spawn().await;
    let org = new_id();

    health::until_health(app.addr, ServingStatus::Serving, Duration::from_secs(10)).await;
    for _ in 0..3 {
        let draft = app.complete_draft(&org).await;
        app.publish(&org, &draft.id).await.expect("publish answers OK");
        app.fetch_draft(&org, &draft.id).await;
    }
    app.until_changes(&org, 3).await;
    let database = app.database_url().rsplit('/').next().unwrap();
    let mut through_pooler =
        sqlx::PgConnection::connect(&with_database(&pooler.url("postgres"), database)).await.unwrap();
    // The simple query protocol: this query prepares nothing itself.
    let left: String = sqlx::raw_sql("SELECT count(*)::text FROM pg_prepared_statements")
        .fetch_one(&mut through_pooler)
        .await
        .unwrap()
        .get(0);

    assert_eq!(left, "0", "named prepared statements left on the server connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_publish_through_a_transaction_pooler() {
    let pooler = PgBouncer::start();
    let app = TestApp::builder().through_pooler(&pooler).spawn().await;
    let org = new_id();
    let mut watcher = app.watch(&org, "").await;

    let mut event_ids = Vec::new();
    for _ in 0..3 {
        let draft = app.complete_draft(&org).await;
        event_ids.push(app.publish(&org, &draft.id).await.expect("publish answers OK").event_id);
    }
    let changes = watcher.take(3).await;

    let seen: Vec<_> = changes.iter().map(|c| c.event.as_ref().expect("an event").id.clone()).collect();
    assert_eq!(seen, event_ids, "each publish once, in order");
    assert_eq!(app.changes_after(&org, "").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_holds_through_a_transaction_pooler() {
    let pooler = PgBouncer::start();
    let app = TestApp::builder()
        .through_pooler(&pooler)
        .pool(|pool| pool.statement_timeout = Duration::from_millis(300))
        .spawn()
        .await;

    crate::database_outage::assert_a_publish_held_past_the_statement_timeout_is_unavailable(&app).await;
}
