//! Calls held in flight deterministically: the test locks rows in a
//! transaction of its own, waits until the calls are seen waiting on those
//! locks in `pg_stat_activity`, and lets go when it is ready.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::support::{TestApp, requests::DraftRequests, wait::until};

/// Longest a call may take to reach its lock on a loaded machine.
const LOCK_WAIT_WITHIN: Duration = Duration::from_secs(10);

/// Locks the drafts' rows (`FOR UPDATE`) until the transaction ends, so that
/// calls writing them wait.
pub async fn hold_drafts(db: &PgPool, draft_ids: &[impl AsRef<str>]) -> Transaction<'static, Postgres> {
    let ids: Vec<uuid::Uuid> = draft_ids.iter().map(|id| id.as_ref().parse().expect("a draft id")).collect();
    let mut holder = db.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM drafts WHERE id = ANY($1) FOR UPDATE")
        .bind(&ids)
        .execute(&mut *holder)
        .await
        .expect("draft rows locked");
    holder
}

/// Sessions of `db`'s database waiting on a lock right now.
pub async fn sessions_waiting_on_locks(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(db)
    .await
    .expect("pg_stat_activity readable")
}

/// Waits until at least `calls` sessions of `db`'s database wait on a lock.
pub async fn until_waiting_on_locks(db: &PgPool, calls: usize) {
    let what = format!("{calls} call(s) waiting on a lock");
    until(&what, LOCK_WAIT_WITHIN, || async { sessions_waiting_on_locks(db).await >= calls as i64 }).await;
}

impl TestApp {
    /// Locks the draft's row until the returned transaction ends.
    pub async fn hold_draft(&self, draft_id: &str) -> Transaction<'static, Postgres> {
        hold_drafts(&self.db, &[draft_id]).await
    }

    /// Waits until at least `calls` calls wait on a lock the test holds.
    pub async fn until_calls_wait_on_locks(&self, calls: usize) {
        until_waiting_on_locks(&self.db, calls).await;
    }

    /// Starts a PublishDraft of `draft` on a task of its own.
    pub fn publish_in_background(
        &self,
        draft: &pb::Draft,
    ) -> JoinHandle<Result<pb::PublishDraftResponse, Status>> {
        let (client, request) = (self.client(), draft.publish_request());
        tokio::spawn(async move { client.publish_draft(request).await })
    }
}
