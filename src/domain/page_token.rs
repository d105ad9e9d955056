//! ListDrafts paging: a page size within bounds and an opaque keyset cursor
//! that any replica can read back, bound to the organisation and status filter
//! it was issued for.
//!
//! The token carries no secret: it only names a position in the caller's own
//! organisation's list, so a forged one can reveal nothing. A checksum makes
//! garbled or edited tokens fail loudly instead of paging from a wrong place.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{DraftId, DraftStatus, FieldViolation, OrganizationId, StatusFilter, Timestamp};

/// Number of drafts on one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u16);

impl PageSize {
    /// ListDrafts' default and maximum.
    pub const DEFAULT: u16 = 50;
    pub const MAX: u16 = 500;

    /// ListDrafts' `page_size`: 0 means the default, more than the maximum
    /// means the maximum.
    pub fn parse(requested: i32) -> Result<Self, FieldViolation> {
        Self::parse_within(requested, Self::DEFAULT, Self::MAX)
    }

    /// A `page_size` of an RPC whose default and maximum are given.
    pub fn parse_within(requested: i32, default: u16, max: u16) -> Result<Self, FieldViolation> {
        match requested {
            ..0 => Err(FieldViolation::new("page_size", "must not be negative")),
            0 => Ok(Self(default)),
            n => Ok(Self(n.min(i32::from(max)) as u16)),
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// The last draft of a page: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub create_time: Timestamp,
    pub draft_id: DraftId,
}

/// A decoded `page_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    pub organization_id: OrganizationId,
    pub filter: StatusFilter,
    pub after: Cursor,
}

const FORMAT_VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 16 + 1 + 8 + 16;
pub(super) const CHECKSUM_LEN: usize = 8;

pub(super) fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(payload);
    let mut sum = [0; CHECKSUM_LEN];
    sum.copy_from_slice(&digest[..CHECKSUM_LEN]);
    sum
}

fn filter_code(filter: StatusFilter) -> u8 {
    match filter {
        StatusFilter::Any => 0,
        StatusFilter::Only(DraftStatus::Draft) => 1,
        StatusFilter::Only(DraftStatus::Scheduled) => 2,
        StatusFilter::Only(DraftStatus::Published) => 3,
    }
}

fn filter_from_code(code: u8) -> Option<StatusFilter> {
    [
        StatusFilter::Any,
        StatusFilter::Only(DraftStatus::Draft),
        StatusFilter::Only(DraftStatus::Scheduled),
        StatusFilter::Only(DraftStatus::Published),
    ]
    .into_iter()
    .find(|filter| filter_code(*filter) == code)
}

impl PageToken {
    pub fn encode(&self) -> String {
        let micros = (self.after.create_time.as_datetime().unix_timestamp_nanos() / 1_000) as i64;
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + CHECKSUM_LEN);
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(self.organization_id.as_uuid().as_bytes());
        bytes.push(filter_code(self.filter));
        bytes.extend_from_slice(&micros.to_be_bytes());
        bytes.extend_from_slice(self.after.draft_id.as_uuid().as_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a token back; the reason for refusing it is the error.
    pub fn decode(text: &str) -> Result<Self, &'static str> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| "is not a page token")?;
        if bytes.len() != PAYLOAD_LEN + CHECKSUM_LEN {
            return Err("is not a page token");
        }
        let (payload, sum) = bytes.split_at(PAYLOAD_LEN);
        if checksum(payload) != sum {
            return Err("is corrupted");
        }
        if payload[0] != FORMAT_VERSION {
            return Err("was issued by an incompatible version");
        }
        let uuid = |range: std::ops::Range<usize>| {
            Uuid::from_slice(&payload[range]).map_err(|_| "is not a page token")
        };
        let organization_id = OrganizationId::from_uuid(uuid(1..17)?);
        let filter = filter_from_code(payload[17]).ok_or("is not a page token")?;
        let micros = i64::from_be_bytes(payload[18..26].try_into().map_err(|_| "is not a page token")?);
        // The checksum is no secret: a forged token can carry any instant, so
        // it must be one a draft can have been created at (storage refuses
        // instants before 4713 BC, say).
        let (seconds, micros) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
        let create_time = Timestamp::from_unix("page_token", seconds, micros as i32 * 1_000)
            .map_err(|_| "is not a page token")?;
        let draft_id = DraftId::from_uuid(uuid(26..42)?);
        Ok(Self { organization_id, filter, after: Cursor { create_time, draft_id } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> PageToken {
        PageToken {
            organization_id: OrganizationId::from_uuid(Uuid::now_v7()),
            filter: StatusFilter::Only(DraftStatus::Scheduled),
            after: Cursor {
                create_time: Timestamp::from_unix("t", 1_700_000_000, 123_456_000).unwrap(),
                draft_id: DraftId::generate(),
            },
        }
    }

    #[test]
    fn round_trips() {
        let token = token();
        assert_eq!(PageToken::decode(&token.encode()), Ok(token));
    }

    #[test]
    fn rejects_garbage_and_any_edited_byte() {
        assert!(PageToken::decode("").is_err());
        assert!(PageToken::decode("not a token!").is_err());
        let encoded = token().encode();
        let mut bytes = URL_SAFE_NO_PAD.decode(&encoded).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode(&bytes)).is_err(), "byte {i}");
            bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn rejects_a_well_formed_token_whose_time_no_draft_can_have() {
        let mut bytes = URL_SAFE_NO_PAD.decode(token().encode()).unwrap();
        bytes.truncate(PAYLOAD_LEN);
        // 250,000,000,000 s before 1970: about 5950 BC.
        bytes[18..26].copy_from_slice(&(-250_000_000_000_000_000i64).to_be_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        assert_eq!(PageToken::decode(&URL_SAFE_NO_PAD.encode(&bytes)), Err("is not a page token"));
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(PageSize::parse(0).unwrap().get(), 50);
        assert_eq!(PageSize::parse(7).unwrap().get(), 7);
        assert_eq!(PageSize::parse(501).unwrap().get(), 500);
        assert_eq!(PageSize::parse(i32::MAX).unwrap().get(), 500);
        assert_eq!(PageSize::parse(-1).unwrap_err().field, "page_size");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn filters() -> impl Strategy<Value = StatusFilter> {
        (0u8..4).prop_map(|code| filter_from_code(code).unwrap())
    }

    /// Any instant a draft can have been created at, to the microsecond.
    fn instants() -> impl Strategy<Value = Timestamp> {
        (-62_135_596_800i64..=253_402_300_799, 0i32..1_000_000)
            .prop_map(|(seconds, micros)| Timestamp::from_unix("t", seconds, micros * 1_000).unwrap())
    }

    fn tokens() -> impl Strategy<Value = PageToken> {
        (any::<u128>(), filters(), instants(), any::<u128>()).prop_map(|(org, filter, create_time, draft)| {
            PageToken {
                organization_id: OrganizationId::from_uuid(Uuid::from_u128(org)),
                filter,
                after: Cursor { create_time, draft_id: DraftId::from_uuid(Uuid::from_u128(draft)) },
            }
        })
    }

    proptest! {
        #[test]
        fn valid_tokens_round_trip(token in tokens()) {
            let encoded = token.encode();
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert_eq!(PageToken::decode(&encoded), Ok(token));
        }

        #[test]
        fn any_text_decodes_without_panicking(text in any::<String>()) {
            let _ = PageToken::decode(&text);
        }

        #[test]
        fn random_bytes_of_any_length_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            // Without the checksum's 2^-64 luck, random bytes never decode.
            prop_assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        }

        #[test]
        fn tampered_tokens_are_rejected(
            token in tokens(),
            position in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut bytes = URL_SAFE_NO_PAD.decode(token.encode()).unwrap();
            let i = position.index(bytes.len());
            bytes[i] ^= flip;
            prop_assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        }

        #[test]
        fn truncated_or_extended_tokens_are_rejected(token in tokens(), cut in 1usize..50, extra in ".{1,8}") {
            let encoded = token.encode();
            let cut = cut.min(encoded.len());
            prop_assert!(PageToken::decode(&encoded[..encoded.len() - cut]).is_err());
            let extended = format!("{encoded}{extra}");
            prop_assert!(PageToken::decode(&extended).is_err());
        }

        #[test]
        fn page_size_is_bounded_or_refused(requested in any::<i32>()) {
            match PageSize::parse(requested) {
                Ok(size) => {
                    prop_assert!(requested >= 0);
                    prop_assert!((1..=PageSize::MAX).contains(&size.get()));
                }
                Err(violation) => {
                    prop_assert!(requested < 0);
                    prop_assert_eq!(violation.field, "page_size");
                }
            }
        }
    }
}
