//! Database errors, classified by SQLSTATE and constraint name in one place.

use crate::error::Error;

/// The one-event-per-draft constraint: the second publish of a draft
/// violates it.
pub(super) const ONE_EVENT_PER_DRAFT: &str = "events_draft_id_key";
/// The at-commit check that the draft names its event: it fails when the
/// draft changed while a publish statement was linking it.
const DRAFT_LINKS_BACK: &str = "events_draft_links_back_fkey";

pub(super) fn classify(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match (code.as_ref(), db.constraint()) {
                ("23505", Some(ONE_EVENT_PER_DRAFT)) => Error::PublishRaceLost,
                ("23503", Some(DRAFT_LINKS_BACK)) => Error::DraftChanged,
                // serialization_failure, deadlock_detected
                ("40001" | "40P01", _) => Error::Conflict(error),
                // connection exceptions, shutdown, too many connections,
                // statement timeout or cancellation by the server
                (c, _) if c.starts_with("08") || c.starts_with("57") || c == "53300" => {
                    Error::DatabaseUnavailable(error)
                }
                _ => Error::Internal(error.into()),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Error::DatabaseUnavailable(error),
        _ => Error::Internal(error.into()),
    }
}
