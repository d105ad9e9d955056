//! The event-change feed as a consumer sees it: every change of an
//! organisation read through ListEventChanges, and Watch streams read with
//! a deadline.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;
use tonic::{Status, Streaming};

use crate::support::{TestClient, wait::until_some};

/// Longest a change may take to reach a reader on a loaded machine.
pub const DELIVERY_WITHIN: Duration = Duration::from_secs(10);

/// Changes the relay has not recorded as sent: not positioned yet, or
/// positioned after its progress.
pub async fn unsent_changes(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM event_changes
         WHERE position IS NULL OR position > (SELECT position FROM relay_progress)",
    )
    .fetch_one(db)
    .await
    .expect("counting unsent changes")
}

pub fn list_changes_request(
    organization_id: &str,
    after_cursor: &str,
    page_size: i32,
) -> pb::ListEventChangesRequest {
    pb::ListEventChangesRequest {
        organization_id: organization_id.to_owned(),
        after_cursor: after_cursor.to_owned(),
        page_size,
    }
}

impl TestClient {
    /// Every change of the organisation after `after_cursor`, page by page.
    pub async fn changes_after(&self, organization_id: &str, after_cursor: &str) -> Vec<pb::EventChange> {
        let mut changes = Vec::new();
        let mut cursor = after_cursor.to_owned();
        loop {
            let page = self
                .list_event_changes(list_changes_request(organization_id, &cursor, 0))
                .await
                .unwrap_or_else(|s| panic!("ListEventChanges failed: {s:?}"));
            if page.changes.is_empty() {
                return changes;
            }
            cursor = page.next_cursor;
            changes.extend(page.changes);
        }
    }

    /// The organisation's changes once there are at least `count`.
    pub async fn until_changes(&self, organization_id: &str, count: usize) -> Vec<pb::EventChange> {
        let what = format!("{count} change(s) in the feed");
        until_some(&what, DELIVERY_WITHIN, || async {
            let changes = self.changes_after(organization_id, "").await;
            (changes.len() >= count).then_some(changes)
        })
        .await
    }

    /// An open Watch stream.
    pub async fn watch(&self, organization_id: &str, after_cursor: &str) -> Watcher {
        let stream = self
            .watch_event_changes(organization_id, after_cursor)
            .await
            .unwrap_or_else(|s| panic!("WatchEventChanges refused: {s:?}"));
        Watcher { stream }
    }
}

pub struct Watcher {
    stream: Streaming<pb::WatchEventChangesResponse>,
}

impl Watcher {
    /// The next message: a change, the status ending the stream, or `None`
    /// when it ended cleanly. Panics when nothing came within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Result<pb::EventChange, Status>> {
        let next = tokio::time::timeout(within, self.stream.message())
            .await
            .unwrap_or_else(|_| panic!("no message within {within:?}"));
        match next {
            Ok(Some(message)) => Some(Ok(message.change.expect("a change"))),
            Ok(None) => None,
            Err(status) => Some(Err(status)),
        }
    }

    /// The next `count` changes, each within [`DELIVERY_WITHIN`].
    pub async fn take(&mut self, count: usize) -> Vec<pb::EventChange> {
        let mut changes = Vec::with_capacity(count);
        while changes.len() < count {
            match self.next_within(DELIVERY_WITHIN).await {
                Some(Ok(change)) => changes.push(change),
                other => panic!("stream ended after {} of {count} changes: {other:?}", changes.len()),
            }
        }
        changes
    }

    /// True when nothing arrives within `quiet`.
    pub async fn is_quiet_for(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.stream.message()).await.is_err()
    }
}
