//! Publication: reading and publishing a draft in one statement, and reading
//! events.

use std::sync::LazyLock;

use sqlx::FromRow;

use super::{
    Answer, Error, Store,
    rows::{DraftMaybeEventRow, EVENT_COLUMNS, EventRow},
};
use crate::domain::{Draft, DraftId, Event, EventId, OrganizationId, Timestamp};

/// What the publish statement found or did.
#[derive(Debug)]
pub enum Publishing {
    /// It created the event (and its changes) and linked the draft.
    Created(Draft, Event),
    /// The draft was already published: its event.
    Existing(Draft, Event),
    /// The draft is not flagged publishable: nothing written.
    NotPublishable(Draft),
}

#[derive(FromRow)]
struct PublishingRow {
    created: bool,
    #[sqlx(flatten)]
    found: DraftMaybeEventRow,
}

/// Reads the draft and, when it is unpublished and publishable, creates its
/// event from its content at the version read, writes the event's changes
/// (C1) and links the draft — one statement, so one round trip and one
/// transaction.
///
/// A concurrent publisher of the same draft makes the event insert fail on
/// the one-event-per-draft constraint (`Error::PublishRaceLost`): the
/// statement rolls back whole. A draft updated between the read and the link
/// is not linked, and the at-commit foreign key (the event's draft must name
/// it) rolls everything back (`Error::DraftChanged`): an orphan event can
/// never be committed.
static PUBLISH: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"
        WITH draft AS (
            SELECT * FROM drafts WHERE id = $1 AND organization_id = $2
        ), e AS (
            INSERT INTO events (id, organization_id, draft_id, title, description, location,
                                starts_at, ends_at, publish_time, create_time)
            SELECT $3, organization_id, id, title, description, location, starts_at, ends_at, $4, $5
            FROM draft
            WHERE event_id IS NULL AND publishable
            RETURNING *
        ), changes AS (
            INSERT INTO event_changes (event_id, kind, organization_id, change_time)
            SELECT e.id, change.kind, e.organization_id, change.change_time
            FROM e
            CROSS JOIN LATERAL (VALUES (1::smallint, e.create_time), (2::smallint, e.publish_time))
                AS change (kind, change_time)
            WHERE change.kind = 2 OR e.publish_time > e.create_time
        ), linked AS (
            UPDATE drafts
            SET status = 'published', event_id = e.id, publish_time = e.publish_time,
                version = drafts.version + 1, update_time = $5
            FROM e, draft
            WHERE drafts.id = e.draft_id AND drafts.version = draft.version AND drafts.event_id IS NULL
            RETURNING drafts.*
        )
        SELECT true AS created, linked.*, {EVENT_COLUMNS}
        FROM linked JOIN e ON e.id = linked.event_id
        UNION ALL
        SELECT false AS created, draft.*, {EVENT_COLUMNS}
        FROM draft LEFT JOIN events e ON e.id = draft.event_id
        WHERE NOT EXISTS (SELECT FROM e)
        "#
    )
});

static GET_EVENT: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = $1 AND e.organization_id = $2")
});

impl Store {
    /// Publishes the draft as event `event_id` going live at `publish_time`
    /// (see [`PUBLISH`]); `None` when the organisation has no such draft.
    #[tracing::instrument(
        level = "debug",
        name = "publish",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "publish")
    )]
    pub async fn publish(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
        event_id: EventId,
        publish_time: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Publishing>, Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, PublishingRow>(PUBLISH.as_str())
            .bind(draft_id.as_uuid())
            .bind(organization_id.as_uuid())
            .bind(event_id.as_uuid())
            .bind(publish_time.as_datetime())
            .bind(now.as_datetime())
            .persistent(self.named_statements())
            .fetch_optional(&mut *work)
            .within(&self.answer_within)
            .await?;
        work.done().await?;
        Ok(row.map(|row| {
            let draft = Draft::from(row.found.draft);
            match (row.created, row.found.event.0) {
                (true, Some(event)) => Publishing::Created(draft, event.into()),
                (false, Some(event)) => Publishing::Existing(draft, event.into()),
                (_, None) => Publishing::NotPublishable(draft),
            }
        }))
    }

    /// Flags a draft publishable after the domain found its content complete
    /// (a draft written before the flag existed); `Error::DraftChanged` when
    /// it changed meanwhile.
    #[tracing::instrument(
        level = "debug",
        name = "mark_publishable",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "mark_publishable")
    )]
    pub async fn mark_publishable(&self, draft: &Draft) -> Result<(), Error> {
        let mut work = self.connection().await?;
        let updated = sqlx::query(
            r#"
            UPDATE drafts SET publishable = true
            WHERE id = $1 AND organization_id = $2 AND version = $3 AND event_id IS NULL
            "#,
        )
        .bind(draft.id.as_uuid())
        .bind(draft.organization_id.as_uuid())
        .bind(draft.version)
        .persistent(self.named_statements())
        .execute(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        if updated.rows_affected() == 1 { Ok(()) } else { Err(Error::DraftChanged) }
    }

    #[tracing::instrument(
        level = "debug",
        name = "get_event",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "get_event")
    )]
    pub async fn get_event(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
    ) -> Result<Option<Event>, Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, EventRow>(GET_EVENT.as_str())
            .bind(event_id.as_uuid())
            .bind(organization_id.as_uuid())
            .persistent(self.named_statements())
            .fetch_optional(&mut *work)
            .within(&self.answer_within)
            .await?;
        work.done().await?;
        Ok(row.map(Event::from))
    }
}
