//! Migrating a live v1 database: events published before the change feed
//! existed get their changes, so the feed is complete from the first event.

use std::{path::Path, time::Duration};

use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

use crate::support::*;

/// A draft and its event as v1 published them (no changes), created a
/// minute ago, going live `publish_offset` from now; draft and event share
/// the id.
const V1_PUBLISH: &str = r#"
    WITH d AS (
        INSERT INTO drafts (id, organization_id, title, starts_at, ends_at, status, event_id,
                            create_time, update_time, publish_time)
        VALUES ($1, $2, 't', now(), now() + interval '1 day', 'published', $1,
                now() - interval '1 minute', now(), now() + $3::interval)
    )
    INSERT INTO events (id, organization_id, draft_id, title, description, location,
                        starts_at, ends_at, publish_time, create_time)
    VALUES ($1, $2, $1, 't', '', '', now(), now() + interval '1 day',
            now() + $3::interval, now() - interval '1 minute')
"#;

async fn publish_v1(db: &PgPool, org: uuid::Uuid, publish_offset: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let publish = sqlx::query(V1_PUBLISH).bind(id).bind(org).bind(publish_offset);
    publish.execute(db).await.expect("a v1 publish");
    id
}

/// A database of its own with the migrations up to `version` applied, a
/// pool on it, and the migrator to take it further.
async fn database_migrated_to(version: i64) -> (TestDatabase, PgPool, Migrator) {
    let database = TestDatabase::new();
    draft_publisher::Store::create_database_if_missing(&database.url).await.unwrap();
    let db = PgPoolOptions::new().max_connections(2).connect(&database.url).await.unwrap();
    let migrator = Migrator::new(Path::new("migrations")).await.unwrap();
    migrator.run_to(version, &db).await.unwrap_or_else(|e| panic!("migrations up to {version}: {e}"));
    (database, db, migrator)
}

#[tokio::test]
async fn events_published_before_the_feed_get_their_changes_in_time_order() {
    let (database, db, _) = database_migrated_to(1).await;
    let org = uuid::Uuid::now_v7();
    let immediate = publish_v1(&db, org, "-1 minute").await;
    let went_live = publish_v1(&db, org, "-10 seconds").await;
    let scheduled = publish_v1(&db, org, "1 hour").await;

    let app = TestApp::builder().database_url(&database.url).spawn().await;

    let changes = app.until_changes(&org.to_string(), 4).await;
    let got: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        got,
        [
            format!("{immediate}.published"),
            format!("{went_live}.scheduled"),
            format!("{scheduled}.scheduled"),
            format!("{went_live}.published"),
        ],
        "by change time; the scheduled event's PUBLISHED waits for its time"
    );
    let mut watcher = app.watch(&org.to_string(), &changes[3].cursor).await;
    assert!(watcher.is_quiet_for(Duration::from_millis(700)).await, "nothing released early");
}

/// Migration 0004 replaces the per-change marks with one progress position:
/// the relay resumes after the last change sent before it, and sends every
/// later one.
#[tokio::test]
async fn the_relay_resumes_after_the_last_change_marked_sent_before_the_progress_row() {
    let (_database, db, migrator) = database_migrated_to(3).await;
    let org = uuid::Uuid::now_v7();
    // As the earlier relay left them: positioned 1..=4, the first two sent.
    for position in 1..=4_i64 {
        let event = publish_v1(&db, org, "-1 minute").await;
        sqlx::query(
            "INSERT INTO event_changes (event_id, kind, organization_id, change_time, position, sent_time)
             VALUES ($1, 2, $2, now(), $3, CASE WHEN $3 <= 2 THEN now() END)",
        )
        .bind(event)
        .bind(org)
        .bind(position)
        .execute(&db)
        .await
        .expect("a change as the earlier relay left it");
    }

    migrator.run(&db).await.expect("migration 0004");

    let progress: i64 =
        sqlx::query_scalar("SELECT position FROM relay_progress").fetch_one(&db).await.unwrap();
    assert_eq!(progress, 2, "just after the last change sent");
    assert_eq!(unsent_changes(&db).await, 2);
}
