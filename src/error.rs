//! The service's errors: what a use case may answer instead of a result, in
//! the contract's terms. Domain and store errors convert into it; how each
//! one is told to a gRPC caller is decided at the edge, in `api::status`.

use crate::{
    domain::{Described, DraftIncomplete, FieldViolation, Invalid},
    store,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", Described(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("request_id was already used for a draft with different content")]
    RequestIdReused,
    #[error("page_token {0}")]
    InvalidPageToken(&'static str),
    #[error("after_cursor {0}")]
    InvalidCursor(&'static str),
    #[error("draft not found")]
    DraftNotFound,
    #[error("event not found")]
    EventNotFound,
    #[error("the draft is not complete enough to publish: {}", Described(.0))]
    DraftIncomplete(Vec<FieldViolation>),
    #[error("the draft is published or scheduled and can no longer change")]
    DraftAlreadyPublished,
    #[error("the draft is at version {current}, not the expected version {expected}")]
    VersionMismatch { expected: i64, current: i64 },
    /// Retries were exhausted while other calls kept changing the draft.
    #[error("the draft kept changing concurrently; retry the call")]
    ContentionExhausted,
    /// What the store reports: a concurrent change, an unavailable
    /// database, or its own fault.
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// Worth retrying inside the service.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_transient())
    }
}

impl From<Invalid> for Error {
    fn from(Invalid(violations): Invalid) -> Self {
        Self::InvalidArgument(violations)
    }
}

impl From<DraftIncomplete> for Error {
    fn from(DraftIncomplete(violations): DraftIncomplete) -> Self {
        Self::DraftIncomplete(violations)
    }
}
