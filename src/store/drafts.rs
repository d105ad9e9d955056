//! Creating, reading, changing and listing drafts.

use sqlx::FromRow;

use super::{Answer, Error, Store, rows::DraftRow};
use crate::domain::{
    Cursor, Draft, DraftContent, DraftId, DraftStatus, NewDraft, OrganizationId, PageSize, StatusFilter,
    Timestamp,
};

/// What CreateDraft found or made.
#[derive(Debug)]
pub enum CreatedDraft {
    Created(Draft),
    /// The organisation used the request_id before with the same content.
    Existing(Draft),
    /// The organisation used the request_id before with other content.
    RequestIdReused,
}

/// A draft found by its request_id, with the fingerprint of the request
/// that created it.
#[derive(FromRow)]
struct RequestedDraftRow {
    request_fingerprint: Option<Vec<u8>>,
    #[sqlx(flatten)]
    draft: DraftRow,
}

impl Store {
    /// Inserts a draft; with a request_id, the unique constraint on
    /// (organization_id, request_id) makes concurrent retries meet one row.
    #[tracing::instrument(
        level = "debug",
        name = "create_draft",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "create_draft")
    )]
    pub async fn create_draft(
        &self,
        id: DraftId,
        new: &NewDraft,
        now: Timestamp,
    ) -> Result<CreatedDraft, Error> {
        let content = &new.content;
        let request_id = new.request_id.map(|r| r.as_uuid());
        let fingerprint = request_id.map(|_| content.fingerprint());
        let mut work = self.connection().await?;
        let inserted = sqlx::query_as::<_, DraftRow>(
            r#"
            INSERT INTO drafts (id, organization_id, request_id, request_fingerprint,
                                title, description, location, starts_at, ends_at,
                                create_time, update_time, publishable)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)
            ON CONFLICT ON CONSTRAINT drafts_organization_request_id_key DO NOTHING
            RETURNING *
            "#,
        )
        .bind(id.as_uuid())
        .bind(new.organization_id.as_uuid())
        .bind(request_id)
        .bind(&fingerprint)
        .bind(content.title.as_str())
        .bind(content.description.as_str())
        .bind(content.location.as_str())
        .bind(content.starts_at.map(|t| t.as_datetime()))
        .bind(content.ends_at.map(|t| t.as_datetime()))
        .bind(now.as_datetime())
        .bind(content.check_complete().is_ok())
        .persistent(self.named_statements())
        .fetch_optional(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        if let Some(row) = inserted {
            return Ok(CreatedDraft::Created(row.into()));
        }

        let mut work = self.connection().await?;
        let existing = sqlx::query_as::<_, RequestedDraftRow>(
            r#"
            SELECT *
            FROM drafts
            WHERE organization_id = $1 AND request_id = $2
            "#,
        )
        .bind(new.organization_id.as_uuid())
        .bind(request_id)
        .persistent(self.named_statements())
        .fetch_optional(&mut *work)
        .within(&self.answer_within)
        .await?
        // Drafts are never deleted, so the conflicting row is there.
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("request_id conflict without a row")))?;
        work.done().await?;
        if existing.request_fingerprint != fingerprint {
            return Ok(CreatedDraft::RequestIdReused);
        }
        Ok(CreatedDraft::Existing(existing.draft.into()))
    }

    #[tracing::instrument(
        level = "debug",
        name = "get_draft",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "get_draft")
    )]
    pub async fn get_draft(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
    ) -> Result<Option<Draft>, Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, DraftRow>(
            r#"
            SELECT *
            FROM drafts
            WHERE id = $1 AND organization_id = $2
            "#,
        )
        .bind(draft_id.as_uuid())
        .bind(organization_id.as_uuid())
        .persistent(self.named_statements())
        .fetch_optional(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        Ok(row.map(Draft::from))
    }

    /// Replaces the content of an unpublished draft, if it is still at
    /// `version`; `Error::DraftChanged` when it changed (or was published)
    /// meanwhile.
    #[tracing::instrument(
        level = "debug",
        name = "update_draft_content",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "update_draft_content")
    )]
    pub async fn update_draft_content(
        &self,
        draft: &Draft,
        content: &DraftContent,
        now: Timestamp,
    ) -> Result<Draft, Error> {
        let mut work = self.connection().await?;
        let row = sqlx::query_as::<_, DraftRow>(
            r#"
            UPDATE drafts
            SET title = $4, description = $5, location = $6, starts_at = $7, ends_at = $8,
                version = version + 1, update_time = $9, publishable = $10
            WHERE id = $1 AND organization_id = $2 AND version = $3 AND event_id IS NULL
            RETURNING *
            "#,
        )
        .bind(draft.id.as_uuid())
        .bind(draft.organization_id.as_uuid())
        .bind(draft.version)
        .bind(content.title.as_str())
        .bind(content.description.as_str())
        .bind(content.location.as_str())
        .bind(content.starts_at.map(|t| t.as_datetime()))
        .bind(content.ends_at.map(|t| t.as_datetime()))
        .bind(now.as_datetime())
        .bind(content.check_complete().is_ok())
        .persistent(self.named_statements())
        .fetch_optional(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        row.map(Draft::from).ok_or(Error::DraftChanged)
    }

    /// One page of an organisation's drafts after `after`, oldest first.
    /// Fetches one row more than the page to tell whether another page follows.
    #[tracing::instrument(
        level = "debug",
        name = "list_drafts",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "list_drafts")
    )]
    pub async fn list_drafts(
        &self,
        organization_id: OrganizationId,
        filter: StatusFilter,
        after: Option<Cursor>,
        page_size: PageSize,
        now: Timestamp,
    ) -> Result<Vec<Draft>, Error> {
        let status = match filter {
            StatusFilter::Any => "any",
            StatusFilter::Only(DraftStatus::Draft) => "draft",
            StatusFilter::Only(DraftStatus::Scheduled) => "scheduled",
            StatusFilter::Only(DraftStatus::Published) => "published",
        };
        // The first page starts before any possible creation time, so one
        // statement (and one index range scan) serves every page.
        let (after_time, after_id) = match after {
            Some(cursor) => (cursor.create_time.as_datetime(), cursor.draft_id.as_uuid()),
            None => (time::macros::datetime!(0001-01-01 0:00 UTC), uuid::Uuid::nil()),
        };
        let mut work = self.connection().await?;
        let found = sqlx::query_as::<_, DraftRow>(
            r#"
            SELECT *
            FROM drafts
            WHERE organization_id = $1
              AND (create_time, id) > ($2, $3)
              AND CASE $4::text
                    WHEN 'draft' THEN event_id IS NULL
                    WHEN 'scheduled' THEN publish_time > $5
                    WHEN 'published' THEN publish_time <= $5
                    ELSE true
                  END
            ORDER BY create_time, id
            LIMIT $6
            "#,
        )
        .bind(organization_id.as_uuid())
        .bind(after_time)
        .bind(after_id)
        .bind(status)
        .bind(now.as_datetime())
        .bind(i64::from(page_size.get()) + 1)
        .persistent(self.named_statements())
        .fetch_all(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        Ok(found.into_iter().map(Draft::from).collect())
    }
}
