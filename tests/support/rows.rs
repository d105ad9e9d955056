//! Rows written and counted behind the service's back: what another
//! publisher, drift or a broken backup would leave in the database.

use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use crate::support::TestApp;

/// Inserts event `event_id` as a copy of draft `draft_id`'s content.
/// How many of the (draft, event) pairs callers were told exist as events
/// of that draft: I5, every event id told exists, for its draft.
pub async fn told_events_found<'e>(db: impl PgExecutor<'e>, drafts: &[Uuid], events: &[Uuid]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events e JOIN unnest($1::uuid[], $2::uuid[]) AS told (draft_id, event_id)
         ON e.id = told.event_id AND e.draft_id = told.draft_id",
    )
    .bind(drafts)
    .bind(events)
    .fetch_one(db)
    .await
    .expect("events readable")
}

pub async fn insert_event_copy<'e>(db: impl PgExecutor<'e>, event_id: Uuid, draft_id: Uuid) {
    sqlx::query(
        "INSERT INTO events (id, organization_id, draft_id, title, description, location,
                             starts_at, ends_at, publish_time, create_time)
         SELECT $1, organization_id, id, title, description, location, starts_at, ends_at, now(), now()
         FROM drafts WHERE id = $2",
    )
    .bind(event_id)
    .bind(draft_id)
    .execute(db)
    .await
    .expect("event copy inserted");
}

impl TestApp {
    /// The single number `sql` selects.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect(sql)
    }

    /// Publishes the draft in a transaction of the test's own, left open: its
    /// event holds the draft's slot in the one-event-per-draft index, so a
    /// concurrent PublishDraft waits and then loses on the constraint once
    /// the transaction commits. Returns the transaction and the event's id.
    pub async fn rival_publish(&self, draft_id: &str) -> (Transaction<'static, Postgres>, Uuid) {
        let draft_id = Uuid::parse_str(draft_id).unwrap();
        let event_id = Uuid::now_v7();
        let mut rival = self.db.begin().await.unwrap();
        insert_event_copy(&mut *rival, event_id, draft_id).await;
        sqlx::query(
            "UPDATE drafts SET status = 'published', event_id = $1, publish_time = now(), version = version + 1
             WHERE id = $2",
        )
        .bind(event_id)
        .bind(draft_id)
        .execute(&mut *rival)
        .await
        .unwrap();
        (rival, event_id)
    }
}
