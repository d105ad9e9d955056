//! Exactly-once under real concurrency: many callers on separate connections,
//! started together, against the real server and database.

use std::{collections::HashSet, sync::Arc, time::Duration};

use draft_publisher::proto::v1 as pb;
use sqlx::PgPool;
use tokio::sync::Barrier;

use crate::support::{locks, metrics, wait::until_reads, *};

const DRAFTS: usize = 50;
const CALLERS: usize = 16;

/// I1–I3, checked in SQL.
pub(crate) async fn assert_invariants(db: &PgPool) {
    let checks = [
        (
            "I1 a draft with two events",
            "SELECT count(*) FROM (SELECT draft_id FROM events GROUP BY draft_id HAVING count(*) > 1) d",
        ),
        (
            "I2 an event with two drafts",
            "SELECT count(*) FROM (SELECT event_id FROM drafts WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1) e",
        ),
        (
            "I3 status and event_id disagree",
            "SELECT count(*) FROM drafts WHERE (status = 'published') <> (event_id IS NOT NULL)",
        ),
        (
            "I3 orphan event",
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM drafts d WHERE d.id = e.draft_id AND d.event_id = e.id)",
        ),
        (
            "I3 draft names a foreign event",
            "SELECT count(*) FROM drafts d WHERE d.event_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id AND e.draft_id = d.id)",
        ),
    ];
    for (what, sql) in checks {
        let violations: i64 = sqlx::query_scalar(sql).fetch_one(db).await.unwrap();
        assert_eq!(violations, 0, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_of_each_draft_get_one_event() {
    concurrent_publishers_race(&TestApp::spawn().await).await;
}

/// [`CALLERS`] publishers of each of [`DRAFTS`] drafts at once: one event
/// per draft, every caller answered OK with it.
pub(crate) async fn concurrent_publishers_race(app: &TestApp) {
    let org = new_id();
    let mut clients = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        clients.push(app.connect().await);
    }
    let mut drafts = Vec::with_capacity(DRAFTS);
    for _ in 0..DRAFTS {
        drafts.push(app.complete_draft(&org).await.id);
    }

    for draft_id in &drafts {
        let start = Arc::new(Barrier::new(CALLERS));
        let calls = clients.iter().map(|client| {
            let (client, start, request) = (client.clone(), start.clone(), publish_request(&org, draft_id));
            tokio::spawn(async move {
                start.wait().await;
                client.publish_draft(request).await
            })
        });
        let answers: Vec<_> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|joined| joined.unwrap().expect("every publisher is answered OK"))
            .collect();

        let winners = answers.iter().filter(|a| !a.already_published).count();
        let event_ids: HashSet<_> = answers.iter().map(|a| a.event_id.as_str()).collect();
        assert_eq!(winners, 1, "draft {draft_id}: exactly one call creates the event");
        assert_eq!(event_ids.len(), 1, "draft {draft_id}: one event id for every caller");
    }

    assert_eq!(app.count("SELECT count(*) FROM events").await, DRAFTS as i64);
    assert_eq!(
        app.count("SELECT count(*) FROM drafts WHERE status = 'published' AND version = 2").await,
        DRAFTS as i64
    );
    assert_invariants(&app.db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_with_one_request_id_make_one_draft() {
    let app = TestApp::spawn().await;
    let request = pb::CreateDraftRequest { request_id: new_id(), ..complete_draft_request(&new_id()) };
    let start = Arc::new(Barrier::new(CALLERS));

    let mut calls = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        let (client, start, request) = (app.connect().await, start.clone(), request.clone());
        calls.push(tokio::spawn(async move {
            start.wait().await;
            client.create_draft(request).await.map(|r| r.draft.expect("a draft").id)
        }));
    }
    let ids: HashSet<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().expect("every create is answered OK"))
        .collect();

    assert_eq!(ids.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 1);
}

/// Publishes of a draft whose publish is in flight on the same replica wait
/// for it instead of queueing on the draft's row in PostgreSQL: one
/// statement for all of them, the same event for every caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_of_a_draft_in_flight_here_wait_for_it_not_for_the_database() {
    const FOLLOWERS: usize = 8;
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;
    let first = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;

    let followers: Vec<_> = (0..FOLLOWERS).map(|_| app.publish_in_background(&draft)).collect();
    until_reads("the followers waiting for the first publish", Duration::from_secs(10), Some(8.0), || {
        metrics::metric_value(app.metrics_addr, "draftpublisher_publish_calls_waiting", &[])
    })
    .await;
    let in_database = locks::sessions_waiting_on_locks(&app.db).await;
    holder.commit().await.unwrap();

    let first = first.await.unwrap().expect("the first publish answers");
    assert!(!first.already_published);
    for follower in followers {
        let answer = follower.await.unwrap().expect("a follower answers");
        assert!(answer.already_published);
        assert_eq!(answer.event_id, first.event_id);
    }
    assert_eq!(in_database, 1, "only the first publish waited in the database");
    let text = metrics::scrape_text(app.metrics_addr).await;
    let outcomes =
        |outcome| metrics::sample(&text, "draftpublisher_publish_outcomes_total", &[("outcome", outcome)]);
    assert_eq!(outcomes("joined"), Some(FOLLOWERS as f64));
    assert_eq!(outcomes("created"), Some(1.0));
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

/// A publish that waited for one that failed publishes by itself: it never
/// inherits another call's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_waiting_for_one_that_fails_publishes_by_itself() {
    let app = TestApp::builder().pool(|pool| pool.statement_timeout = Duration::from_secs(2)).spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;
    let first = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;
    let follower = app.publish_in_background(&draft);
    until_reads("the follower waiting", Duration::from_secs(10), Some(1.0), || {
        metrics::metric_value(app.metrics_addr, "draftpublisher_publish_calls_waiting", &[])
    })
    .await;

    // The first gives up on the held row (its statement times out) ...
    first.await.unwrap().expect_err("the first publish times out");
    // ... and the follower, on its own, now waits on the row in turn.
    app.until_calls_wait_on_locks(1).await;
    holder.commit().await.unwrap();

    let answer = follower.await.unwrap().expect("the follower publishes");
    assert!(!answer.already_published, "it created the event itself");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_that_loses_on_the_constraint_answers_with_the_winners_event() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    // Another publisher, mid-transaction: its event row holds the draft's
    // slot in the one-event-per-draft index until it commits.
    let (winner, winner_event) = app.rival_publish(&draft.id).await;

    let loser = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;
    winner.commit().await.unwrap();

    let answer = loser.await.unwrap().expect("the loser answers OK");
    assert!(answer.already_published);
    assert_eq!(answer.event_id, winner_event.to_string());
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
    assert_invariants(&app.db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_racing_an_update_never_commits_an_orphan_or_stale_event() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    let draft_id = uuid::Uuid::parse_str(&draft.id).unwrap();

    // An update in flight holds the draft's row while the publish runs.
    let mut update = app.db.begin().await.unwrap();
    sqlx::query("UPDATE drafts SET title = 'Updated title', version = version + 1 WHERE id = $1")
        .bind(draft_id)
        .execute(&mut *update)
        .await
        .unwrap();
    let publisher = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;
    update.commit().await.unwrap();

    let answer = publisher.await.unwrap().expect("the publish answers OK");
    assert!(!answer.already_published);
    assert_eq!(answer.event.unwrap().title, "Updated title", "the event copies the committed content");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
    assert_invariants(&app.db).await;
}
