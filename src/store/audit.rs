//! The invariant audit: I1–I3 and the feed's C1–C4 checked directly in SQL, without trusting the
//! schema's constraints, which a migration gone wrong, manual SQL or a
//! restored backup may have lost.

use sqlx::FromRow;
use uuid::Uuid;

use super::{Error, Store};
use crate::domain::Timestamp;

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
    /// C1: an event without its PUBLISHED change, or whose SCHEDULED change
    /// is missing (scheduled at creation) or should not exist.
    EventWithoutItsChanges,
    /// C2: a change whose event is missing, or that disagrees with it
    /// (organisation, change time).
    ChangeWithoutItsEvent,
    /// C3: an event's PUBLISHED change positioned while its SCHEDULED one
    /// is not, or before it.
    ChangesOutOfOrder,
    /// C4 (with `--unsent-after`): a change due longer ago than the
    /// threshold and still not acknowledged by NATS.
    UnsentChange,
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
            Self::EventWithoutItsChanges => "C1",
            Self::ChangeWithoutItsEvent => "C2",
            Self::ChangesOutOfOrder => "C3",
            Self::UnsentChange => "C4",
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
            Self::EventWithoutItsChanges => "event_without_its_changes",
            Self::ChangeWithoutItsEvent => "change_without_its_event",
            Self::ChangesOutOfOrder => "changes_out_of_order",
            Self::UnsentChange => "unsent_change",
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
const CHECKS: [(ViolationKind, &str); 9] = [
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
    (
        ViolationKind::EventWithoutItsChanges,
        r#"
        SELECT ARRAY[e.draft_id] AS draft_ids, ARRAY[e.id] AS event_ids,
               CASE WHEN NOT coalesce(c.published, false) THEN 'no PUBLISHED change'
                    WHEN coalesce(c.scheduled, false) THEN 'a SCHEDULED change, but it was published at once'
                    ELSE 'no SCHEDULED change, but it was scheduled' END AS detail
        FROM events e
        LEFT JOIN LATERAL (
            SELECT bool_or(kind = 1) AS scheduled, bool_or(kind = 2) AS published
            FROM event_changes
            WHERE event_id = e.id
        ) c ON true
        WHERE NOT coalesce(c.published, false)
           OR coalesce(c.scheduled, false) <> (e.publish_time > e.create_time)
        "#,
    ),
    (
        ViolationKind::ChangeWithoutItsEvent,
        r#"
        SELECT CASE WHEN e.id IS NULL THEN ARRAY[]::uuid[] ELSE ARRAY[e.draft_id] END AS draft_ids,
               ARRAY[c.event_id] AS event_ids,
               'change kind ' || c.kind || CASE
                   WHEN e.id IS NULL THEN ': its event does not exist'
                   WHEN e.organization_id <> c.organization_id THEN ': in organization ' || c.organization_id
                   ELSE ': change_time ' || c.change_time END AS detail
        FROM event_changes c
        LEFT JOIN events e ON e.id = c.event_id
        WHERE e.id IS NULL
           OR e.organization_id <> c.organization_id
           OR c.change_time <> CASE c.kind WHEN 1 THEN e.create_time ELSE e.publish_time END
        "#,
    ),
    (
        ViolationKind::ChangesOutOfOrder,
        r#"
        SELECT ARRAY[]::uuid[] AS draft_ids, ARRAY[p.event_id] AS event_ids,
               'PUBLISHED at position ' || p.position || ', SCHEDULED at '
                 || coalesce(s.position::text, 'none') AS detail
        FROM event_changes p
        JOIN event_changes s ON s.event_id = p.event_id AND s.kind = 1
        WHERE p.kind = 2 AND p.position IS NOT NULL
          AND (s.position IS NULL OR s.position > p.position)
        "#,
    ),
];

/// C4, run only when asked: changes due before `$1` and still unsent (not
/// positioned yet, or positioned after the relay's progress).
const UNSENT_CHECK: &str = r#"
    SELECT ARRAY[]::uuid[] AS draft_ids, ARRAY[event_id] AS event_ids,
           'change kind ' || kind || ' due at ' || change_time || ', not acknowledged by NATS' AS detail
    FROM event_changes
    WHERE (position IS NULL OR position > (SELECT position FROM relay_progress))
      AND change_time < $1
"#;

/// What every check selects.
#[derive(FromRow)]
struct ViolationRow {
    draft_ids: Vec<Uuid>,
    event_ids: Vec<Uuid>,
    detail: String,
}

impl ViolationRow {
    fn violation(self, kind: ViolationKind) -> Violation {
        Violation { kind, draft_ids: self.draft_ids, event_ids: self.event_ids, detail: self.detail }
    }
}

impl Store {
    /// Runs every check in one read-only, repeatable-read transaction, so
    /// that the report describes one consistent snapshot of a live database.
    /// With `unsent_before`, also reports changes due before that instant
    /// and not yet sent to NATS (only meaningful with the relay on).
    pub async fn audit(&self, unsent_before: Option<Timestamp>) -> Result<AuditReport, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let mut report = AuditReport::default();
        (report.drafts, report.events) =
            sqlx::query_as("SELECT (SELECT count(*) FROM drafts), (SELECT count(*) FROM events)")
                .fetch_one(&mut *tx)
                .await?;
        for (kind, sql) in CHECKS {
            let rows = sqlx::query_as::<_, ViolationRow>(sql).fetch_all(&mut *tx).await?;
            report.violations.extend(rows.into_iter().map(|row| row.violation(kind)));
        }
        if let Some(before) = unsent_before {
            let rows = sqlx::query_as::<_, ViolationRow>(UNSENT_CHECK)
                .bind(before.as_datetime())
                .fetch_all(&mut *tx)
                .await?;
            report.violations.extend(rows.into_iter().map(|row| row.violation(ViolationKind::UnsentChange)));
        }
        tx.rollback().await?;
        report.violations.sort();
        Ok(report)
    }
}
