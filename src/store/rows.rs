//! Result rows as typed structs, read by `sqlx::FromRow`, and turned into
//! domain values. A draft's columns keep their names; an event's are selected
//! with an `ev_` prefix (`e.title AS ev_title`), because a joined row holds a
//! draft and its event and the two tables name their columns alike.

use sqlx::{FromRow, Row, postgres::PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    Description, Draft, DraftContent, DraftId, Event, EventId, Location, OrganizationId, Timestamp, Title,
};

/// A row of `drafts` (`SELECT *` or `RETURNING *`; other columns are ignored).
#[derive(Debug, FromRow)]
pub(super) struct DraftRow {
    id: Uuid,
    organization_id: Uuid,
    title: String,
    description: String,
    location: String,
    starts_at: Option<OffsetDateTime>,
    ends_at: Option<OffsetDateTime>,
    event_id: Option<Uuid>,
    version: i64,
    create_time: OffsetDateTime,
    update_time: OffsetDateTime,
    publish_time: Option<OffsetDateTime>,
}

impl From<DraftRow> for Draft {
    fn from(row: DraftRow) -> Self {
        Draft {
            id: DraftId::from_uuid(row.id),
            organization_id: OrganizationId::from_uuid(row.organization_id),
            content: DraftContent {
                title: Title::from_stored(row.title),
                description: Description::from_stored(row.description),
                location: Location::from_stored(row.location),
                starts_at: row.starts_at.map(Timestamp::from_datetime),
                ends_at: row.ends_at.map(Timestamp::from_datetime),
            },
            event_id: row.event_id.map(EventId::from_uuid),
            version: row.version,
            create_time: Timestamp::from_datetime(row.create_time),
            update_time: Timestamp::from_datetime(row.update_time),
            publish_time: row.publish_time.map(Timestamp::from_datetime),
        }
    }
}

/// The columns of an `events` row aliased `e`, each selected as
/// `ev_<column>`: what [`EventRow`] reads.
pub(super) const EVENT_COLUMNS: &str = "e.id AS ev_id, e.organization_id AS ev_organization_id, \
     e.draft_id AS ev_draft_id, e.title AS ev_title, e.description AS ev_description, \
     e.location AS ev_location, e.starts_at AS ev_starts_at, e.ends_at AS ev_ends_at, \
     e.publish_time AS ev_publish_time, e.create_time AS ev_create_time";

/// The columns of `events`, each selected as `ev_<column>`.
#[derive(Debug, FromRow)]
pub(super) struct EventRow {
    #[sqlx(rename = "ev_id")]
    id: Uuid,
    #[sqlx(rename = "ev_organization_id")]
    organization_id: Uuid,
    #[sqlx(rename = "ev_draft_id")]
    draft_id: Uuid,
    #[sqlx(rename = "ev_title")]
    title: String,
    #[sqlx(rename = "ev_description")]
    description: String,
    #[sqlx(rename = "ev_location")]
    location: String,
    #[sqlx(rename = "ev_starts_at")]
    starts_at: OffsetDateTime,
    #[sqlx(rename = "ev_ends_at")]
    ends_at: OffsetDateTime,
    #[sqlx(rename = "ev_publish_time")]
    publish_time: OffsetDateTime,
    #[sqlx(rename = "ev_create_time")]
    create_time: OffsetDateTime,
}

impl From<EventRow> for Event {
    fn from(row: EventRow) -> Self {
        Event {
            id: EventId::from_uuid(row.id),
            organization_id: OrganizationId::from_uuid(row.organization_id),
            draft_id: DraftId::from_uuid(row.draft_id),
            title: row.title,
            description: row.description,
            location: row.location,
            starts_at: Timestamp::from_datetime(row.starts_at),
            ends_at: Timestamp::from_datetime(row.ends_at),
            publish_time: Timestamp::from_datetime(row.publish_time),
            create_time: Timestamp::from_datetime(row.create_time),
        }
    }
}

/// A draft and, when it has one, its event: a row of drafts LEFT JOIN events.
#[derive(Debug, FromRow)]
pub(super) struct DraftMaybeEventRow {
    #[sqlx(flatten)]
    pub draft: DraftRow,
    #[sqlx(flatten)]
    pub event: JoinedEvent,
}

/// The event columns of an outer join: all NULL when the draft has none.
#[derive(Debug)]
pub(super) struct JoinedEvent(pub Option<EventRow>);

impl<'r> FromRow<'r, PgRow> for JoinedEvent {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        // `ev_id` is the event's primary key: NULL only when no event joined.
        if row.try_get::<Option<Uuid>, _>("ev_id")?.is_none() {
            return Ok(Self(None));
        }
        EventRow::from_row(row).map(|event| Self(Some(event)))
    }
}
