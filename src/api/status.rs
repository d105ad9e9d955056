//! The one place that decides how an error is told to a gRPC caller: its
//! status code, `ErrorInfo` reason and details (`BadRequest`,
//! `PreconditionFailure`). Used by the handlers and by the server layers
//! that refuse calls (authentication, limits). Internal details are logged
//! here and never sent.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{domain::OrganizationId, error::Error, store};

/// `ErrorInfo.domain` of every error the service produces.
pub const ERROR_DOMAIN: &str = "draftpublisher.v1";

/// Calls refused at the edge, before any use case runs.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Bytes that are not a valid request message (e.g. a string field that
    /// is not UTF-8): the caller's mistake, not the service's.
    #[error("the request message does not decode: {why}")]
    MalformedRequest { field: String, why: String },
    #[error("missing credentials: send the metadata `authorization: Bearer <token>`")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The organisation in the request is outside the caller's scope; the
    /// call read and wrote nothing.
    #[error("these credentials may not act for organization {organization_id}")]
    OrganizationNotAllowed { organization_id: OrganizationId },
    /// Under mutual TLS with client organisations configured, the client
    /// certificate's CN is not listed: it may call nothing.
    #[error("{}", client_not_allowed(common_name.as_deref()))]
    ClientNotAllowed { common_name: Option<String> },
    /// The server is at its limit of calls in flight; the call was not started.
    #[error("the server is overloaded; retry with back-off")]
    Overloaded,
    /// The call ran longer than the server allows. Work already started (a
    /// publish) still completes; retrying tells its outcome.
    #[error("the call took longer than the server's limit of {0:?}; retry to learn its outcome")]
    RequestTimeout(Duration),
    /// The request message did not arrive in time; the call was not started.
    #[error("the request message did not arrive within {0:?}")]
    RequestMessageTimeout(Duration),
    /// The server began to shut down while a stream was open.
    #[error("the server is shutting down; retry (a stream resumes from its last cursor)")]
    ShuttingDown,
}

fn client_not_allowed(common_name: Option<&str>) -> String {
    match common_name {
        Some(cn) => format!("the client certificate CN={cn:?} is allowed no organization"),
        None => "the client certificate has no single subject CN; it is allowed no organization".to_owned(),
    }
}

/// The status code and `ErrorInfo.reason` the contract gives an error.
fn code_and_reason(error: &Error) -> (Code, &'static str) {
    match error {
        Error::InvalidArgument(_) => (Code::InvalidArgument, "INVALID_REQUEST"),
        Error::RequestIdReused => (Code::InvalidArgument, "REQUEST_ID_REUSED"),
        Error::InvalidPageToken(_) => (Code::InvalidArgument, "INVALID_PAGE_TOKEN"),
        Error::InvalidCursor(_) => (Code::InvalidArgument, "INVALID_CURSOR"),
        Error::DraftNotFound => (Code::NotFound, "DRAFT_NOT_FOUND"),
        Error::EventNotFound => (Code::NotFound, "EVENT_NOT_FOUND"),
        Error::DraftIncomplete(_) => (Code::FailedPrecondition, "DRAFT_INCOMPLETE"),
        Error::DraftAlreadyPublished => (Code::FailedPrecondition, "DRAFT_ALREADY_PUBLISHED"),
        Error::VersionMismatch { .. } => (Code::Aborted, "VERSION_MISMATCH"),
        Error::Store(
            store::Error::PublishRaceLost | store::Error::DraftChanged | store::Error::Conflict(_),
        )
        | Error::ContentionExhausted => (Code::Aborted, "CONCURRENT_MODIFICATION"),
        Error::Store(store::Error::Unavailable(_)) => (Code::Unavailable, "DATABASE_UNAVAILABLE"),
        Error::Store(store::Error::Internal(_)) | Error::Internal(_) => (Code::Internal, "INTERNAL"),
    }
}

fn refusal_code_and_reason(refusal: &Refusal) -> (Code, &'static str) {
    match refusal {
        Refusal::MalformedRequest { .. } => (Code::InvalidArgument, "INVALID_REQUEST"),
        Refusal::MissingCredentials => (Code::Unauthenticated, "MISSING_CREDENTIALS"),
        Refusal::InvalidCredentials => (Code::Unauthenticated, "INVALID_CREDENTIALS"),
        Refusal::OrganizationNotAllowed { .. } | Refusal::ClientNotAllowed { .. } => {
            (Code::PermissionDenied, "ORGANIZATION_NOT_ALLOWED")
        }
        Refusal::Overloaded => (Code::Unavailable, "OVERLOADED"),
        Refusal::RequestTimeout(_) => (Code::DeadlineExceeded, "REQUEST_TIMEOUT"),
        Refusal::RequestMessageTimeout(_) => (Code::DeadlineExceeded, "REQUEST_MESSAGE_TIMEOUT"),
        Refusal::ShuttingDown => (Code::Unavailable, "SHUTTING_DOWN"),
    }
}

/// `ErrorInfo` and the error's own details.
fn details(error: &Error, reason: &'static str) -> ErrorDetails {
    let metadata = match error {
        Error::VersionMismatch { expected, current } => HashMap::from([
            ("expected_version".to_owned(), expected.to_string()),
            ("current_version".to_owned(), current.to_string()),
        ]),
        _ => HashMap::new(),
    };
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    match error {
        Error::InvalidArgument(violations) => {
            for v in violations {
                details.add_bad_request_violation(v.field, v.description.clone());
            }
        }
        Error::RequestIdReused => {
            details.add_bad_request_violation(
                "request_id",
                "was already used for a draft with different content",
            );
        }
        Error::InvalidPageToken(why) => {
            details.add_bad_request_violation("page_token", *why);
        }
        Error::InvalidCursor(why) => {
            details.add_bad_request_violation("after_cursor", *why);
        }
        Error::DraftIncomplete(violations) => {
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

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let (code, reason) = code_and_reason(&error);
        let message = match code {
            // The details are for the logs, never for the caller.
            Code::Internal => {
                tracing::error!(error = ?error, "internal error");
                "internal error".to_owned()
            }
            Code::Unavailable => {
                tracing::warn!(error = %error_chain(&error), "database unavailable");
                error.to_string()
            }
            _ => error.to_string(),
        };
        Status::with_error_details(code, message, details(&error, reason))
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let (code, reason) = refusal_code_and_reason(&refusal);
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
        if let Refusal::MalformedRequest { field, why } = &refusal {
            details.add_bad_request_violation(field.clone(), why.clone());
        }
        Status::with_error_details(code, refusal.to_string(), details)
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
