//! Rows to domain values, and the column lists that produce those rows, kept
//! side by side. Draft columns keep their names; event columns are selected
//! with an `ev_` prefix so both fit in one joined row.

use sqlx::{Row, postgres::PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    Description, Draft, DraftContent, DraftId, Event, EventId, Location, OrganizationId, Timestamp, Title,
};

/// The columns of `drafts` that [`draft`] reads, for `concat!` into SQL.
macro_rules! draft_columns {
    () => {
        "id, organization_id, title, description, location, starts_at, ends_at, \
         event_id, version, create_time, update_time, publish_time"
    };
}

/// The columns of `events` that [`event`] reads, `ev_`-prefixed.
macro_rules! event_columns {
    () => {
        "id AS ev_id, organization_id AS ev_organization_id, draft_id AS ev_draft_id, \
         title AS ev_title, description AS ev_description, location AS ev_location, \
         starts_at AS ev_starts_at, ends_at AS ev_ends_at, \
         publish_time AS ev_publish_time, create_time AS ev_create_time"
    };
}

pub(super) use {draft_columns, event_columns};

fn instant(row: &PgRow, column: &str) -> sqlx::Result<Timestamp> {
    row.try_get::<OffsetDateTime, _>(column).map(Timestamp::from_datetime)
}

fn optional_instant(row: &PgRow, column: &str) -> sqlx::Result<Option<Timestamp>> {
    Ok(row.try_get::<Option<OffsetDateTime>, _>(column)?.map(Timestamp::from_datetime))
}

pub(super) fn draft(row: &PgRow) -> sqlx::Result<Draft> {
    Ok(Draft {
        id: DraftId::from_uuid(row.try_get("id")?),
        organization_id: OrganizationId::from_uuid(row.try_get("organization_id")?),
        content: DraftContent {
            title: Title::from_stored(row.try_get("title")?),
            description: Description::from_stored(row.try_get("description")?),
            location: Location::from_stored(row.try_get("location")?),
            starts_at: optional_instant(row, "starts_at")?,
            ends_at: optional_instant(row, "ends_at")?,
        },
        event_id: row.try_get::<Option<Uuid>, _>("event_id")?.map(EventId::from_uuid),
        version: row.try_get("version")?,
        create_time: instant(row, "create_time")?,
        update_time: instant(row, "update_time")?,
        publish_time: optional_instant(row, "publish_time")?,
    })
}

/// The `ev_`-prefixed event of a row, if the row has one (outer joins).
pub(super) fn event(row: &PgRow) -> sqlx::Result<Option<Event>> {
    let Some(id) = row.try_get::<Option<Uuid>, _>("ev_id")? else {
        return Ok(None);
    };
    Ok(Some(Event {
        id: EventId::from_uuid(id),
        organization_id: OrganizationId::from_uuid(row.try_get("ev_organization_id")?),
        draft_id: DraftId::from_uuid(row.try_get("ev_draft_id")?),
        title: row.try_get("ev_title")?,
        description: row.try_get("ev_description")?,
        location: row.try_get("ev_location")?,
        starts_at: instant(row, "ev_starts_at")?,
        ends_at: instant(row, "ev_ends_at")?,
        publish_time: instant(row, "ev_publish_time")?,
        create_time: instant(row, "ev_create_time")?,
    }))
}
