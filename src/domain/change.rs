//! The event-change feed's values: what happened to an event, its place in
//! the organisation's one order, and the opaque cursor that resumes after it.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use super::{
    Event, EventId, OrganizationId, Timestamp,
    page_token::{CHECKSUM_LEN, checksum},
};

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Created with a publish time in the future.
    Scheduled,
    /// Live: at creation, or at its publish time when scheduled.
    Published,
}

impl ChangeKind {
    /// The stored code, as `EventChangeType` numbers it.
    pub fn code(self) -> i16 {
        match self {
            Self::Scheduled => 1,
            Self::Published => 2,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(Self::Scheduled),
            2 => Some(Self::Published),
            _ => None,
        }
    }

    /// As in change ids, subjects and CloudEvents types.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Published => "published",
        }
    }
}

/// A change's place in the feed: positions only grow, and one is given only
/// once every change before it is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(i64);

impl Position {
    /// Before every change.
    pub const START: Self = Self(0);

    pub fn from_stored(position: i64) -> Self {
        Self(position)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// One entry of an organisation's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventChange {
    pub kind: ChangeKind,
    pub event: Event,
    pub position: Position,
}

/// `<event_id>.scheduled` or `<event_id>.published`: stable, unique, and the
/// key NATS deduplicates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeId {
    pub event_id: EventId,
    pub kind: ChangeKind,
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.event_id, self.kind.name())
    }
}

impl EventChange {
    pub fn id(&self) -> ChangeId {
        ChangeId { event_id: self.event.id, kind: self.kind }
    }

    /// The event's create time (SCHEDULED) or publish time (PUBLISHED).
    pub fn change_time(&self) -> Timestamp {
        match self.kind {
            ChangeKind::Scheduled => self.event.create_time,
            ChangeKind::Published => self.event.publish_time,
        }
    }

    pub fn cursor(&self) -> FeedCursor {
        FeedCursor { organization_id: self.event.organization_id, after: self.position }
    }
}

/// A decoded `after_cursor`: resume after `after` in this organisation's
/// feed. Like page tokens it carries no secret (it names a place in the
/// caller's own feed), and a checksum makes edited cursors fail loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedCursor {
    pub organization_id: OrganizationId,
    pub after: Position,
}

const FORMAT_VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 16 + 8;

impl FeedCursor {
    pub fn start(organization_id: OrganizationId) -> Self {
        Self { organization_id, after: Position::START }
    }

    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + CHECKSUM_LEN);
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(self.organization_id.as_uuid().as_bytes());
        bytes.extend_from_slice(&self.after.0.to_be_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor back; the reason for refusing it is the error.
    pub fn decode(text: &str) -> Result<Self, &'static str> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| "is not a cursor")?;
        if bytes.len() != PAYLOAD_LEN + CHECKSUM_LEN {
            return Err("is not a cursor");
        }
        let (payload, sum) = bytes.split_at(PAYLOAD_LEN);
        if checksum(payload) != sum {
            return Err("is corrupted");
        }
        if payload[0] != FORMAT_VERSION {
            return Err("was issued by an incompatible version");
        }
        let organization_id =
            OrganizationId::from_uuid(Uuid::from_slice(&payload[1..17]).map_err(|_| "is not a cursor")?);
        let position = i64::from_be_bytes(payload[17..25].try_into().map_err(|_| "is not a cursor")?);
        if position < 0 {
            return Err("is not a cursor");
        }
        Ok(Self { organization_id, after: Position(position) })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cursors() -> impl Strategy<Value = FeedCursor> {
        (any::<u128>(), 0..=i64::MAX).prop_map(|(org, position)| FeedCursor {
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(org)),
            after: Position(position),
        })
    }

    #[test]
    fn kinds_keep_their_codes() {
        for kind in [ChangeKind::Scheduled, ChangeKind::Published] {
            assert_eq!(ChangeKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ChangeKind::from_code(0), None);
        assert!(ChangeKind::Scheduled < ChangeKind::Published);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(FeedCursor::decode("not a cursor!"), Err("is not a cursor"));
        assert_eq!(FeedCursor::decode(""), Err("is not a cursor"));
    }

    proptest! {
        #[test]
        fn cursors_round_trip(cursor in cursors()) {
            prop_assert_eq!(FeedCursor::decode(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn tampered_cursors_are_rejected(
            cursor in cursors(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut bytes = URL_SAFE_NO_PAD.decode(cursor.encode()).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            prop_assert!(FeedCursor::decode(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        }

        #[test]
        fn any_text_decodes_without_panicking(text in any::<String>()) {
            let _ = FeedCursor::decode(&text);
        }
    }
}
