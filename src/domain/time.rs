//! Instants as the contract knows them: within google.protobuf.Timestamp's
//! range, at PostgreSQL's microsecond precision, read from an injectable
//! clock so that "scheduled until that instant" can be tested without waiting.

use std::fmt;

use time::{Duration, OffsetDateTime};

use super::FieldViolation;

/// 0001-01-01T00:00:00Z, the earliest valid google.protobuf.Timestamp.
const MIN_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z, the latest valid google.protobuf.Timestamp second.
const MAX_SECONDS: i64 = 253_402_300_799;

/// A point in time, valid as a protobuf Timestamp and storable without loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Validates the request field `field`; digits finer than a microsecond
    /// are dropped, as storage would drop them.
    pub fn from_unix(field: &'static str, seconds: i64, nanos: i32) -> Result<Self, FieldViolation> {
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(FieldViolation::new(field, "nanos must be between 0 and 999,999,999"));
        }
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
            return Err(FieldViolation::new(
                field,
                "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z",
            ));
        }
        let micros = nanos / 1_000;
        let instant = OffsetDateTime::from_unix_timestamp(seconds)
            .map_err(|_| FieldViolation::new(field, "is out of range"))?
            + Duration::microseconds(micros.into());
        Ok(Self(instant))
    }

    /// Wraps an instant read back from storage or a clock.
    pub fn from_datetime(instant: OffsetDateTime) -> Self {
        let nanos = instant.nanosecond();
        Self(instant - Duration::nanoseconds((nanos % 1_000).into()))
    }

    pub fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn subsec_nanos(&self) -> i32 {
        // At most 999,999,000: always fits.
        self.0.nanosecond() as i32
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&time::format_description::well_known::Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

/// Where the service reads the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_whole_protobuf_range_and_nothing_beyond() {
        assert!(Timestamp::from_unix("t", MIN_SECONDS, 0).is_ok());
        assert!(Timestamp::from_unix("t", MAX_SECONDS, 999_999_999).is_ok());
        assert!(Timestamp::from_unix("t", MIN_SECONDS - 1, 0).is_err());
        assert!(Timestamp::from_unix("t", MAX_SECONDS + 1, 0).is_err());
        assert!(Timestamp::from_unix("t", 0, -1).is_err());
        assert!(Timestamp::from_unix("t", 0, 1_000_000_000).is_err());
    }

    #[test]
    fn keeps_microseconds_and_drops_finer_digits() {
        let t = Timestamp::from_unix("t", 1_700_000_000, 123_456_789).unwrap();
        assert_eq!((t.unix_seconds(), t.subsec_nanos()), (1_700_000_000, 123_456_000));
        assert_eq!(Timestamp::from_datetime(t.as_datetime()), t);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_seconds_and_nanos_are_validated_without_panicking(seconds in any::<i64>(), nanos in any::<i32>()) {
            let valid = (MIN_SECONDS..=MAX_SECONDS).contains(&seconds) && (0..1_000_000_000).contains(&nanos);
            match Timestamp::from_unix("starts_at", seconds, nanos) {
                Ok(t) => {
                    prop_assert!(valid);
                    prop_assert_eq!((t.unix_seconds(), t.subsec_nanos()), (seconds, nanos / 1_000 * 1_000));
                }
                Err(violation) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(violation.field, "starts_at");
                }
            }
        }

        #[test]
        fn valid_range_round_trips(seconds in MIN_SECONDS..=MAX_SECONDS, nanos in 0i32..1_000_000_000) {
            let t = Timestamp::from_unix("t", seconds, nanos).unwrap();
            prop_assert_eq!(Timestamp::from_unix("t", t.unix_seconds(), t.subsec_nanos()), Ok(t));
        }
    }
}
