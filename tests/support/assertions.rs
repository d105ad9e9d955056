//! Assertions on the contract's errors: the status code, and the
//! `google.rpc` details every error of the service carries.

use draft_publisher::ERROR_DOMAIN;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo` reason of an error the service itself produced; `None`
/// for failures of the transport (refused connection, reset, deadline).
pub fn service_reason(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    details.error_info().filter(|info| info.domain == ERROR_DOMAIN).map(|info| info.reason.clone())
}

/// Asserts the status code and the `ErrorInfo` reason, returning the details.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) -> ErrorDetails {
    assert_eq!(status.code(), code, "status: {status:?}");
    let details = status.get_error_details();
    let info = details.error_info().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, ERROR_DOMAIN);
    assert_eq!(info.reason, reason, "status: {status:?}");
    details
}

/// Asserts INVALID_ARGUMENT with an `ErrorInfo` and a `BadRequest` naming
/// `field`.
#[track_caller]
pub fn assert_invalid_field(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "status: {status:?}");
    let details = status.get_error_details();
    assert!(details.error_info().is_some(), "no ErrorInfo in {status:?}");
    let fields: Vec<_> = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"))
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert!(fields.iter().any(|f| f == field), "{field} not in {fields:?} of {status:?}");
}
