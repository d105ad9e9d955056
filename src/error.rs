//! The one error type, and the one place that decides each error's gRPC
//! status code, `ErrorInfo` reason and details. Internal details are logged
//! here and never sent.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{Described, DraftIncomplete, FieldViolation, Invalid},
    store,
};

/// `ErrorInfo.domain` of every error the service produces.
pub const ERROR_DOMAIN: &str = "draftpublisher.v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", Described(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// Bytes that are not a valid request message (e.g. a string field that
    /// is not UTF-8): the caller's mistake, not the service's.
    #[error("the request message does not decode: {why}")]
    MalformedRequest { field: String, why: String },
    #[error("request_id was already used for a draft with different content")]
    RequestIdReused,
    #[error("page_token {0}")]
    InvalidPageToken(&'static str),
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
    #[error("missing credentials: send the metadata `authorization: Bearer <token>`")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The server is at its limit of calls in flight; the call was not started.
    #[error("the server is overloaded; retry with back-off")]
    Overloaded,
    /// The call ran longer than the server allows. Work already started (a
    /// publish) still completes; retrying tells its outcome.
    #[error("the call took longer than the server's limit of {0:?}; retry to learn its outcome")]
    RequestTimeout(std::time::Duration),
    /// What the store reports: a concurrent change, an unavailable
    /// database, or its own fault.
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
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

impl Error {
    /// Worth retrying inside the service.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_transient())
    }

    /// The status code and `ErrorInfo.reason` the contract gives this error.
    pub fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Self::InvalidArgument(_) | Self::MalformedRequest { .. } => {
                (Code::InvalidArgument, "INVALID_REQUEST")
            }
            Self::RequestIdReused => (Code::InvalidArgument, "REQUEST_ID_REUSED"),
            Self::InvalidPageToken(_) => (Code::InvalidArgument, "INVALID_PAGE_TOKEN"),
            Self::DraftNotFound => (Code::NotFound, "DRAFT_NOT_FOUND"),
            Self::EventNotFound => (Code::NotFound, "EVENT_NOT_FOUND"),
            Self::DraftIncomplete(_) => (Code::FailedPrecondition, "DRAFT_INCOMPLETE"),
            Self::DraftAlreadyPublished => (Code::FailedPrecondition, "DRAFT_ALREADY_PUBLISHED"),
            Self::VersionMismatch { .. } => (Code::Aborted, "VERSION_MISMATCH"),
            Self::Store(
                store::Error::PublishRaceLost | store::Error::DraftChanged | store::Error::Conflict(_),
            )
            | Self::ContentionExhausted => (Code::Aborted, "CONCURRENT_MODIFICATION"),
            Self::MissingCredentials => (Code::Unauthenticated, "MISSING_CREDENTIALS"),
            Self::InvalidCredentials => (Code::Unauthenticated, "INVALID_CREDENTIALS"),
            Self::Overloaded => (Code::Unavailable, "OVERLOADED"),
            Self::RequestTimeout(_) => (Code::DeadlineExceeded, "REQUEST_TIMEOUT"),
            Self::Store(store::Error::Unavailable(_)) => (Code::Unavailable, "DATABASE_UNAVAILABLE"),
            Self::Store(store::Error::Internal(_)) | Self::Internal(_) => (Code::Internal, "INTERNAL"),
        }
    }

    fn details(&self, reason: &'static str) -> ErrorDetails {
        let mut details = ErrorDetails::new();
        details.set_error_info(reason, ERROR_DOMAIN, self.metadata());
        match self {
            Self::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description.clone());
                }
            }
            Self::MalformedRequest { field, why } => {
                details.add_bad_request_violation(field.clone(), why.clone());
            }
            Self::RequestIdReused => {
                details.add_bad_request_violation(
                    "request_id",
                    "was already used for a draft with different content",
                );
            }
            Self::InvalidPageToken(why) => {
                details.add_bad_request_violation("page_token", *why);
            }
            Self::DraftIncomplete(violations) => {
                for v in violations {
                    details.add_precondition_failure_violation(
                        "DRAFT_INCOMPLETE",
                        v.field,
                        v.description.clone(),
                    );
                }
            }
            _ => {}
        }
        details
    }

    fn metadata(&self) -> HashMap<String, String> {
        match self {
            Self::VersionMismatch { expected, current } => HashMap::from([
                ("expected_version".to_owned(), expected.to_string()),
                ("current_version".to_owned(), current.to_string()),
            ]),
            _ => HashMap::new(),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let (code, reason) = error.code_and_reason();
        let message = match code {
            // The details are for the logs, never for the caller.
            Code::Internal => {
                tracing::error!(error = ?error, "internal error");
                "internal error".to_owned()
            }
            Code::Unavailable if matches!(error, Error::Store(_)) => {
                tracing::warn!(error = %error_chain(&error), "database unavailable");
                error.to_string()
            }
            _ => error.to_string(),
        };
        let details = error.details(reason);
        Status::with_error_details(code, message, details)
    }
}

/// The error and its sources on one line, for logs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
