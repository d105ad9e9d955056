//! The store's errors: database errors classified by SQLSTATE and constraint
//! name, in one function, into what the callers act on.

/// The one-event-per-draft constraint: the second publish of a draft
/// violates it.
const ONE_EVENT_PER_DRAFT: &str = "events_draft_id_key";
/// The at-commit check that the draft names its event: it fails when the
/// draft changed while a publish statement was linking it.
const DRAFT_LINKS_BACK: &str = "events_draft_links_back_fkey";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another publisher linked the draft first (unique violation on the
    /// one-event-per-draft constraint): read the winner's event.
    #[error("the draft was published concurrently")]
    PublishRaceLost,
    /// The draft was no longer at the version read when a write ran (an
    /// update, or a publish committed in between): read it again.
    #[error("the draft changed concurrently")]
    DraftChanged,
    /// Serialization failure or deadlock: worth another attempt.
    #[error("concurrent modification: {0}")]
    Conflict(#[source] sqlx::Error),
    /// The database cannot be reached, or refused the work for now.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or a schema that is not what the code expects.
    #[error("database error: {0}")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// Worth another attempt after reading again: a concurrent writer got in
    /// the way.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::DraftChanged | Self::Conflict(_) | Self::PublishRaceLost)
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                match (code.as_ref(), db.constraint()) {
                    ("23505", Some(ONE_EVENT_PER_DRAFT)) => Self::PublishRaceLost,
                    ("23503", Some(DRAFT_LINKS_BACK)) => Self::DraftChanged,
                    // serialization_failure, deadlock_detected
                    ("40001" | "40P01", _) => Self::Conflict(error),
                    // connection exceptions, shutdown, too many connections,
                    // statement timeout or cancellation by the server
                    (c, _) if c.starts_with("08") || c.starts_with("57") || c == "53300" => {
                        Self::Unavailable(error)
                    }
                    _ => Self::Internal(error.into()),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            _ => Self::Internal(error.into()),
        }
    }
}
