//! Publication: linking a draft to its one event, and reading events.

use super::{
    Answer, Error, Store,
    rows::{DraftEventRow, DraftMaybeEventRow, EventRow},
};
use crate::domain::{Draft, DraftId, Event, EventId, OrganizationId, Timestamp};

impl Store {
    /// A draft and, when published, its event: the publish fast path in one
    /// round trip.
    pub async fn draft_with_event(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
    ) -> Result<Option<(Draft, Option<Event>)>, Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, DraftMaybeEventRow>(
            r#"
            SELECT d.*,
                   e.id AS ev_id, e.organization_id AS ev_organization_id, e.draft_id AS ev_draft_id,
                   e.title AS ev_title, e.description AS ev_description, e.location AS ev_location,
                   e.starts_at AS ev_starts_at, e.ends_at AS ev_ends_at,
                   e.publish_time AS ev_publish_time, e.create_time AS ev_create_time
            FROM drafts d
            LEFT JOIN events e ON e.id = d.event_id
            WHERE d.id = $1 AND d.organization_id = $2
            "#,
        )
        .bind(draft_id.as_uuid())
        .bind(organization_id.as_uuid())
        .persistent(self.named_statements())
        .fetch_optional(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        Ok(row.map(|row| (row.draft.into(), row.event.0.map(Event::from))))
    }

    /// Creates the draft's event from its content at `draft.version`, writes
    /// its changes for the feed and links the draft to it, in one statement
    /// and so one transaction.
    ///
    /// A concurrent publisher of the same draft fails on the
    /// one-event-per-draft constraint (`Error::PublishRaceLost`) and its
    /// statement rolls back whole. If the draft changes between the insert
    /// and the link, the link finds no row and the at-commit foreign key
    /// (the event's draft must name it) rolls everything back
    /// (`Error::DraftChanged`): an orphan event can never be committed. A
    /// draft no longer at the version read when the statement began (updated,
    /// or published and committed) inserts nothing: `Error::DraftChanged`
    /// too.
    pub async fn link_new_event(
        &self,
        draft: &Draft,
        event_id: EventId,
        publish_time: Timestamp,
        now: Timestamp,
    ) -> Result<(Draft, Event), Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, DraftEventRow>(
            r#"
            WITH draft AS (
                SELECT id, organization_id, title, description, location, starts_at, ends_at
                FROM drafts
                WHERE id = $1 AND organization_id = $2 AND version = $3 AND event_id IS NULL
            ), event AS (
                INSERT INTO events (id, organization_id, draft_id, title, description, location,
                                    starts_at, ends_at, publish_time, create_time)
                SELECT $4, organization_id, id, title, description, location,
                       starts_at, ends_at, $5, $6
                FROM draft
                RETURNING id AS ev_id, organization_id AS ev_organization_id, draft_id AS ev_draft_id,
                          title AS ev_title, description AS ev_description, location AS ev_location,
                          starts_at AS ev_starts_at, ends_at AS ev_ends_at,
                          publish_time AS ev_publish_time, create_time AS ev_create_time
            ), changes AS (
                -- C1: the event's changes, in its own statement.
                INSERT INTO event_changes (event_id, kind, organization_id, change_time)
                SELECT ev_id, change.kind, ev_organization_id, change.change_time
                FROM event
                CROSS JOIN LATERAL (VALUES (1::smallint, ev_create_time), (2::smallint, ev_publish_time))
                    AS change (kind, change_time)
                WHERE change.kind = 2 OR ev_publish_time > ev_create_time
            ), linked AS (
                UPDATE drafts
                SET status = 'published', event_id = event.ev_id, publish_time = event.ev_publish_time,
                    version = drafts.version + 1, update_time = $6
                FROM event
                WHERE drafts.id = event.ev_draft_id AND drafts.version = $3
                RETURNING drafts.*
            )
            SELECT linked.*, event.* FROM linked JOIN event ON event.ev_id = linked.event_id
            "#,
        )
        .bind(draft.id.as_uuid())
        .bind(draft.organization_id.as_uuid())
        .bind(draft.version)
        .bind(event_id.as_uuid())
        .bind(publish_time.as_datetime())
        .bind(now.as_datetime())
        .persistent(self.named_statements())
        .fetch_optional(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        let row = row.ok_or(Error::DraftChanged)?;
        Ok((row.draft.into(), row.event.into()))
    }

    pub async fn get_event(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
    ) -> Result<Option<Event>, Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, EventRow>(
            r#"
            SELECT id AS ev_id, organization_id AS ev_organization_id, draft_id AS ev_draft_id,
                   title AS ev_title, description AS ev_description, location AS ev_location,
                   starts_at AS ev_starts_at, ends_at AS ev_ends_at,
                   publish_time AS ev_publish_time, create_time AS ev_create_time
            FROM events
            WHERE id = $1 AND organization_id = $2
            "#,
        )
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
