//! Publication: linking a draft to its one event, and reading events.

use super::{
    Store,
    error::classify,
    rows::{self, draft_columns, event_columns},
};
use crate::{
    domain::{Draft, DraftId, Event, EventId, OrganizationId, Timestamp},
    error::Error,
};

impl Store {
    /// A draft and, when published, its event: the publish fast path in one
    /// round trip.
    pub async fn draft_with_event(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
    ) -> Result<Option<(Draft, Option<Event>)>, Error> {
        let row = sqlx::query(concat!(
            "SELECT d.*, e.* FROM (SELECT ",
            draft_columns!(),
            " FROM drafts WHERE id = $1 AND organization_id = $2) d
            LEFT JOIN (SELECT ",
            event_columns!(),
            " FROM events) e ON e.ev_id = d.event_id",
        ))
        .bind(draft_id.as_uuid())
        .bind(organization_id.as_uuid())
        .fetch_optional(&mut *self.connection().await?)
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        let draft = rows::draft(&row).map_err(classify)?;
        let event = rows::event(&row).map_err(classify)?;
        Ok(Some((draft, event)))
    }

    /// Creates the draft's event from its content at `draft.version` and
    /// links the draft to it, in one statement and so one transaction.
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
        let row = sqlx::query(concat!(
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
                RETURNING *
            ), linked AS (
                UPDATE drafts
                SET status = 'published', event_id = event.id, publish_time = event.publish_time,
                    version = drafts.version + 1, update_time = $6
                FROM event
                WHERE drafts.id = event.draft_id AND drafts.version = $3
                RETURNING drafts.*
            )
            SELECT d.*, e.* FROM (SELECT "#,
            draft_columns!(),
            " FROM linked) d JOIN (SELECT ",
            event_columns!(),
            " FROM event) e ON e.ev_id = d.event_id",
        ))
        .bind(draft.id.as_uuid())
        .bind(draft.organization_id.as_uuid())
        .bind(draft.version)
        .bind(event_id.as_uuid())
        .bind(publish_time.as_datetime())
        .bind(now.as_datetime())
        .fetch_optional(&mut *self.connection().await?)
        .await
        .map_err(classify)?;
        let row = row.ok_or(Error::DraftChanged)?;
        let draft = rows::draft(&row).map_err(classify)?;
        let event = rows::event(&row)
            .map_err(classify)?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("publish returned no event")))?;
        Ok((draft, event))
    }

    pub async fn get_event(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
    ) -> Result<Option<Event>, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE id = $1 AND organization_id = $2",
        ))
        .bind(event_id.as_uuid())
        .bind(organization_id.as_uuid())
        .fetch_optional(&mut *self.connection().await?)
        .await
        .map_err(classify)?;
        Ok(row.as_ref().map(rows::event).transpose().map_err(classify)?.flatten())
    }
}
