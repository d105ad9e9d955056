//! The invariant audit: I1–I3 checked directly in SQL, without trusting the
//! schema's constraints, which a migration gone wrong, manual SQL or a
//! restored backup may have lost.

use sqlx::FromRow;
use uuid::Uuid;

use super::{Error, Store};

/// The kinds of broken invariant the audit looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// I1: a draft with more than one event.
    DraftWithSeveralEvents,
    /// I2: an event named by more than one draft.
    EventWithSeveralDrafts,
    /// I3: an event its draft does not name (or whose draft is missing).
    OrphanEvent,
    /// I3: a draft whose status disagrees with its event_id / publish_time.
    StatusMismatch,
    /// I3: a draft naming an event that is missing or belongs to another draft.
    BrokenBackPointer,
    /// An event in another organisation than its draft.
    OrganizationMismatch,
}

impl ViolationKind {
    /// The invariant of the contract this kind breaks.
    pub fn invariant(self) -> &'static str {
        match self {
            Self::DraftWithSeveralEvents => "I1",
            Self::EventWithSeveralDrafts => "I2",
            Self::OrphanEvent
            | Self::StatusMismatch
            | Self::BrokenBackPointer
            | Self::OrganizationMismatch => "I3",
        }
    }

    /// A stable name, printed by the audit command.
    pub fn name(self) -> &'static str {
        match self {
            Self::DraftWithSeveralEvents => "draft_with_several_events",
            Self::EventWithSeveralDrafts => "event_with_several_drafts",
            Self::OrphanEvent => "orphan_event",
            Self::StatusMismatch => "status_mismatch",
            Self::BrokenBackPointer => "broken_back_pointer",
            Self::OrganizationMismatch => "organization_mismatch",
        }
    }
}

/// One broken invariant and the rows involved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The draft(s) involved, sorted.
    pub draft_ids: Vec<Uuid>,
    /// The event(s) involved, sorted.
    pub event_ids: Vec<Uuid>,
    /// What was found, for people (e.g. the status and the organisations).
    pub detail: String,
}

/// What the audit read and found, all from one snapshot.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    pub drafts: i64,
    pub events: i64,
    pub violations: Vec<Violation>,
}

/// Every check returns rows of `draft_ids uuid[], event_ids uuid[], detail text`.
const CHECKS: [(ViolationKind, &str); 6] = [
    (
        ViolationKind::DraftWithSeveralEvents,
        r#"
        SELECT ARRAY[draft_id] AS draft_ids, array_agg(id ORDER BY id) AS event_ids,
               count(*) || ' events' AS detail
        FROM events
        GROUP BY draft_id
        HAVING count(*) > 1
        "#,
    ),
    (
        ViolationKind::EventWithSeveralDrafts,
        r#"
        SELECT array_agg(id ORDER BY id) AS draft_ids, ARRAY[event_id] AS event_ids,
               count(*) || ' drafts' AS detail
        FROM drafts
        WHERE event_id IS NOT NULL
        GROUP BY event_id
        HAVING count(*) > 1
        "#,
    ),
    (
        ViolationKind::OrphanEvent,
        r#"
        SELECT ARRAY[e.draft_id] AS draft_ids, ARRAY[e.id] AS event_ids,
               CASE WHEN d.id IS NULL THEN 'its draft does not exist'
                    WHEN d.event_id IS NULL THEN 'its draft names no event'
                    ELSE 'its draft names event ' || d.event_id END AS detail
        FROM events e
        LEFT JOIN drafts d ON d.id = e.draft_id
        WHERE d.event_id IS DISTINCT FROM e.id
        "#,
    ),
    (
        ViolationKind::StatusMismatch,
        r#"
        SELECT ARRAY[id] AS draft_ids,
               CASE WHEN event_id IS NULL THEN ARRAY[]::uuid[] ELSE ARRAY[event_id] END AS event_ids,
               'status ' || quote_literal(status)
                 || CASE WHEN event_id IS NULL THEN ' without' ELSE ' with' END || ' an event_id'
                 || CASE WHEN publish_time IS NULL THEN ' without' ELSE ' with' END || ' a publish_time'
                 AS detail
        FROM drafts
        WHERE status NOT IN ('draft', 'published')
           OR (status = 'published') <> (event_id IS NOT NULL)
           OR (event_id IS NULL) <> (publish_time IS NULL)
        "#,
    ),
    (
        ViolationKind::BrokenBackPointer,
        r#"
        SELECT ARRAY[d.id] AS draft_ids, ARRAY[d.event_id] AS event_ids,
               CASE WHEN e.id IS NULL THEN 'its event does not exist'
                    ELSE 'its event belongs to draft ' || e.draft_id END AS detail
        FROM drafts d
        LEFT JOIN events e ON e.id = d.event_id
        WHERE d.event_id IS NOT NULL AND e.draft_id IS DISTINCT FROM d.id
        "#,
    ),
    (
        ViolationKind::OrganizationMismatch,
        r#"
        SELECT ARRAY[d.id] AS draft_ids, ARRAY[e.id] AS event_ids,
               'event organization ' || e.organization_id
                 || ', draft organization ' || d.organization_id AS detail
        FROM events e
        JOIN drafts d ON d.id = e.draft_id
        WHERE e.organization_id <> d.organization_id
        "#,
    ),
];

/// What every check selects.
#[derive(FromRow)]
struct ViolationRow {
    draft_ids: Vec<Uuid>,
    event_ids: Vec<Uuid>,
    detail: String,
}

impl Store {
    /// Runs every check in one read-only, repeatable-read transaction, so
    /// that the report describes one consistent snapshot of a live database.
    pub async fn audit(&self) -> Result<AuditReport, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let mut report = AuditReport::default();
        (report.drafts, report.events) =
            sqlx::query_as("SELECT (SELECT count(*) FROM drafts), (SELECT count(*) FROM events)")
                .fetch_one(&mut *tx)
                .await?;
        for (kind, sql) in CHECKS {
            let rows = sqlx::query_as::<_, ViolationRow>(sql).fetch_all(&mut *tx).await?;
            report.violations.extend(rows.into_iter().map(|row| Violation {
                kind,
                draft_ids: row.draft_ids,
                event_ids: row.event_ids,
                detail: row.detail,
            }));
        }
        tx.rollback().await?;
        report.violations.sort();
        Ok(report)
    }
}
