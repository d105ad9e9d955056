//! The deadline a call must be answered by: the server's request timeout,
//! or the caller's own `grpc-timeout` when that is shorter.
//!
//! tonic applies `grpc-timeout` itself, outside every layer, and answers
//! `CANCELLED "Timeout expired"` after dropping the call unobserved (no log,
//! no metric). So the limits layer answers a caller's deadline itself, a
//! little before it runs out ([`EARLY`]), with `DEADLINE_EXCEEDED`: its
//! answer wins over tonic's, and reaches the caller before the caller's own
//! timer gives up.

use std::time::Duration;

use tonic::codegen::http::HeaderMap;

use crate::api::status::Refusal;

/// How much earlier than the caller's deadline the answer is sent: a tenth
/// of it, at most this much.
const EARLY: Duration = Duration::from_millis(20);

/// How long the call may take, and how it is refused when that runs out.
pub(super) fn of(headers: &HeaderMap, request_timeout: Duration) -> (Duration, Refusal) {
    match headers.get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse) {
        Some(deadline) if deadline < request_timeout => {
            (deadline.saturating_sub((deadline / 10).min(EARLY)), Refusal::DeadlineExceeded(deadline))
        }
        _ => (request_timeout, Refusal::RequestTimeout(request_timeout)),
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (gRPC over HTTP/2 spec).
fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_refuses_malformed_values() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123456789m", "10", "10x", "-1m", "1.5S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_shorter_of_the_two_limits_applies() {
        let mut headers = HeaderMap::new();
        let (timeout, refusal) = of(&headers, Duration::from_secs(15));
        assert_eq!(timeout, Duration::from_secs(15));
        assert!(matches!(refusal, Refusal::RequestTimeout(_)));

        headers.insert("grpc-timeout", "100m".parse().unwrap());
        let (timeout, refusal) = of(&headers, Duration::from_secs(15));
        assert_eq!(timeout, Duration::from_millis(90));
        assert!(matches!(refusal, Refusal::DeadlineExceeded(d) if d == Duration::from_millis(100)));

        headers.insert("grpc-timeout", "60S".parse().unwrap());
        assert!(matches!(of(&headers, Duration::from_secs(15)).1, Refusal::RequestTimeout(_)));
    }
}
