//! The event-change outbox: giving committed changes their place in the one
//! order (the sequencer's pass), reading an organisation's feed, and the
//! relay's batches. The rows themselves are written by the publish statement
//! (`events.rs`).

use std::sync::LazyLock;

use sqlx::{AssertSqlSafe, FromRow, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Answer, Error, Store,
    rows::{EVENT_COLUMNS, EventRow},
};
use crate::domain::{ChangeKind, Event, EventChange, OrganizationId, Position, Timestamp};

/// Advisory lock keys (`pg_*_advisory_xact_lock`): one sequencer pass, and
/// one relay batch, at a time across every replica. Transaction-scoped, so
/// they never outlive the transaction, even behind a transaction pooler.
const SEQUENCER_LOCK: i64 = 0x6470_6665_6564_0001;
const RELAY_LOCK: i64 = 0x6470_6665_6564_0002;

/// The channel a sequencer pass notifies, so every replica's watchers wake.
const CHANGES_CHANNEL: &str = "draftpublisher_event_changes";

/// What a sequencer pass did.
#[derive(Debug, Default)]
pub struct SequencerPass {
    /// The highest position given, per organisation.
    pub positioned: Vec<(OrganizationId, Position)>,
    /// Changes positioned in this pass: a full batch means more are ready.
    pub count: usize,
    /// When the next waiting change (a scheduled PUBLISHED) becomes due.
    pub next_release: Option<Timestamp>,
}

/// One sequencer pass in one statement: numbers the committed, due,
/// unpositioned changes after the highest position, notifies every replica
/// of the new top (when there is one), and ends with a row holding when the
/// next waiting change becomes due. That row's subquery reads the snapshot
/// from before the UPDATE, which only touches changes due by `$1`: it sees
/// the same waiting changes a statement after it would.
const SEQUENCE: &str = r#"
    WITH ready AS (
        SELECT event_id, kind,
               row_number() OVER (ORDER BY change_time, kind, event_id) AS n
        FROM event_changes
        WHERE position IS NULL AND change_time <= $1
        ORDER BY change_time, kind, event_id
        LIMIT $2
    ), top AS (
        SELECT coalesce(max(position), 0) AS position FROM event_changes
    ), positioned AS (
        UPDATE event_changes c
        SET position = top.position + ready.n
        FROM ready, top
        WHERE c.event_id = ready.event_id AND c.kind = ready.kind
        RETURNING c.organization_id, c.position
    ), notified AS (
        SELECT pg_notify($3, max(position)::text) FROM positioned HAVING count(*) > 0
    )
    SELECT organization_id, position, NULL::timestamptz AS next_release FROM positioned
    UNION ALL
    SELECT NULL, NULL,
           (SELECT min(change_time) FROM event_changes WHERE position IS NULL AND change_time > $1)
    FROM (SELECT count(*) FROM notified) AS notifying
"#;

/// A row of [`SEQUENCE`]: a positioned change, or the closing row.
#[derive(FromRow)]
struct PassRow {
    organization_id: Option<Uuid>,
    position: Option<i64>,
    next_release: Option<OffsetDateTime>,
}

#[derive(FromRow)]
struct PositionedRow {
    organization_id: Uuid,
    position: i64,
}

/// A change joined with its event.
#[derive(FromRow)]
struct ChangeRow {
    kind: i16,
    position: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

impl TryFrom<ChangeRow> for EventChange {
    type Error = Error;

    fn try_from(row: ChangeRow) -> Result<Self, Error> {
        let kind = ChangeKind::from_code(row.kind)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown change kind {}", row.kind)))?;
        Ok(EventChange { kind, event: Event::from(row.event), position: Position::from_stored(row.position) })
    }
}

fn changes(rows: Vec<ChangeRow>) -> Result<Vec<EventChange>, Error> {
    rows.into_iter().map(EventChange::try_from).collect()
}

/// Every change joined with its event, `ev_`-prefixed as `rows` expects.
static CHANGES_WITH_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.kind, c.position, {EVENT_COLUMNS} FROM event_changes c JOIN events e ON e.id = c.event_id"
    )
});

impl Store {
    /// Gives the committed changes due by `now` (at most `limit`) the next
    /// positions, in (change_time, kind, event) order, under the sequencer
    /// lock, and notifies every replica. Changes still uncommitted are not
    /// visible here: they get later positions in a later pass, so no reader
    /// can have passed them (C3).
    pub async fn sequence_changes(&self, now: Timestamp, limit: i64) -> Result<SequencerPass, Error> {
        let mut connection = self.connection().await?;
        // Most passes find nothing due: answer those without the lock.
        let earliest: Option<OffsetDateTime> =
            sqlx::query_scalar("SELECT min(change_time) FROM event_changes WHERE position IS NULL")
                .persistent(self.named_statements())
                .fetch_one(&mut *connection)
                .within(&self.answer_within)
                .await?;
        connection.done().await?;
        match earliest {
            None => return Ok(SequencerPass::default()),
            Some(due) if due > now.as_datetime() => {
                return Ok(SequencerPass {
                    next_release: Some(Timestamp::from_datetime(due)),
                    ..Default::default()
                });
            }
            Some(_) => {}
        }

        // The lock rides on the BEGIN; it is taken before the UPDATE, whose
        // snapshot then sees the previous pass's positions, so max(position)
        // is current.
        let mut tx = self.transaction(&format!("SELECT pg_advisory_xact_lock({SEQUENCER_LOCK})")).await?;
        let rows = sqlx::query_as::<_, PassRow>(SEQUENCE)
            .bind(now.as_datetime())
            .bind(limit)
            .bind(CHANGES_CHANNEL)
            .persistent(self.named_statements())
            .fetch_all(&mut *tx)
            .within(&self.answer_within)
            .await?;
        tx.commit().within(&self.answer_within).await?;

        let (mut count, mut next_release) = (0, None);
        let mut positioned: Vec<(OrganizationId, Position)> = Vec::new();
        for row in rows {
            let (Some(organization_id), Some(position)) = (row.organization_id, row.position) else {
                // The closing row.
                next_release = row.next_release;
                continue;
            };
            count += 1;
            let organization_id = OrganizationId::from_uuid(organization_id);
            let position = Position::from_stored(position);
            match positioned.iter_mut().find(|(org, _)| *org == organization_id) {
                Some((_, top)) => *top = (*top).max(position),
                None => positioned.push((organization_id, position)),
            }
        }
        Ok(SequencerPass { positioned, count, next_release: next_release.map(Timestamp::from_datetime) })
    }

    /// The highest position of each organisation with changes after `after`.
    pub async fn positions_since(&self, after: Position) -> Result<Vec<(OrganizationId, Position)>, Error> {
        let mut work = self.connection().await?;
        let rows = sqlx::query_as::<_, PositionedRow>(
            r#"
            SELECT organization_id, max(position) AS position
            FROM event_changes
            WHERE position > $1
            GROUP BY organization_id
            "#,
        )
        .bind(after.get())
        .persistent(self.named_statements())
        .fetch_all(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        Ok(rows
            .into_iter()
            .map(|r| (OrganizationId::from_uuid(r.organization_id), Position::from_stored(r.position)))
            .collect())
    }

    /// The highest position given so far.
    pub async fn top_position(&self) -> Result<Position, Error> {
        let mut work = self.connection().await?;
        let top: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM event_changes")
            .persistent(self.named_statements())
            .fetch_one(&mut *work)
            .within(&self.answer_within)
            .await?;
        work.done().await?;
        Ok(Position::from_stored(top.unwrap_or(0)))
    }

    /// Up to `limit` of an organisation's changes after `after`, in order.
    #[tracing::instrument(
        level = "debug",
        name = "list_changes",
        skip_all,
        fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "list_changes")
    )]
    pub async fn list_changes(
        &self,
        organization_id: OrganizationId,
        after: Position,
        limit: u16,
    ) -> Result<Vec<EventChange>, Error> {
        let mut work = self.connection().await?;
        let rows = sqlx::query_as::<_, ChangeRow>(AssertSqlSafe(format!(
            r#"{}
            WHERE c.organization_id = $1 AND c.position > $2 AND c.position IS NOT NULL
            ORDER BY c.position
            LIMIT $3
            "#,
            CHANGES_WITH_EVENTS.as_str()
        )))
        .bind(organization_id.as_uuid())
        .bind(after.get())
        .bind(i64::from(limit))
        .persistent(self.named_statements())
        .fetch_all(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        changes(rows)
    }

    /// Opens a relay batch: the oldest positioned changes not yet sent, when
    /// no other replica's relay holds the relay lock; `None` when one does.
    pub async fn begin_relay_batch(&self, limit: i64) -> Result<Option<RelayBatch>, Error> {
        // A relay whose host vanishes leaves this transaction idle, holding
        // the lock, until PostgreSQL notices: bound that, so another replica
        // resends well within the stream's duplicate window.
        let mut tx = self.transaction("SET LOCAL idle_in_transaction_session_timeout = '60s'").await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .persistent(self.named_statements())
            .fetch_one(&mut *tx)
            .within(&self.answer_within)
            .await?;
        if !locked {
            return Ok(None);
        }
        let rows = sqlx::query_as::<_, ChangeRow>(AssertSqlSafe(format!(
            r#"{}
            WHERE c.position > (SELECT position FROM relay_progress)
            ORDER BY c.position
            LIMIT $1
            "#,
            CHANGES_WITH_EVENTS.as_str()
        )))
        .bind(limit)
        .persistent(self.named_statements())
        .fetch_all(&mut *tx)
        .within(&self.answer_within)
        .await?;
        Ok(Some(RelayBatch { tx, changes: changes(rows)?, named_statements: self.named_statements() }))
    }

    /// Seconds since the oldest change due by `now` and not yet sent became
    /// due; 0 when every due change is sent.
    pub async fn oldest_unsent_age(&self, now: Timestamp) -> Result<f64, Error> {
        let mut work = self.connection().await?;
        // Two index-backed parts rather than one condition that would scan
        // the table: the first unsent changes by position, and the
        // unpositioned partial index. Positions follow change times but for
        // changes that committed late (by that delay), so the oldest of the
        // first thousand unsent is the oldest unsent, read from the position
        // index: a minimum over every row after the progress is planned as
        // a scan of the whole table (33 ms at 600k changes).
        let oldest: Option<OffsetDateTime> = sqlx::query_scalar(
            r#"
            SELECT least(
                (SELECT min(change_time) FROM (
                     SELECT change_time FROM event_changes
                     WHERE position > (SELECT position FROM relay_progress)
                     ORDER BY position
                     LIMIT 1000
                 ) AS first_unsent),
                (SELECT min(change_time) FROM event_changes
                 WHERE position IS NULL AND change_time <= $1)
            )
            "#,
        )
        .bind(now.as_datetime())
        .persistent(self.named_statements())
        .fetch_one(&mut *work)
        .within(&self.answer_within)
        .await?;
        work.done().await?;
        Ok(oldest.map_or(0.0, |oldest| (now.as_datetime() - oldest).as_seconds_f64().max(0.0)))
    }
}

/// Changes for the relay to send, under the relay lock until `mark_sent` or
/// drop (which rolls back and frees the lock).
pub struct RelayBatch {
    tx: Transaction<'static, Postgres>,
    pub changes: Vec<EventChange>,
    named_statements: bool,
}

impl RelayBatch {
    /// Records that JetStream acknowledged every change up to `last` (the
    /// position of the batch's last acknowledged change) and ends the batch.
    pub async fn mark_sent_through(mut self, last: Option<Position>, now: Timestamp) -> Result<(), Error> {
        if let Some(last) = last {
            sqlx::query("UPDATE relay_progress SET position = $1, update_time = $2 WHERE position < $1")
                .bind(last.get())
                .bind(now.as_datetime())
                .persistent(self.named_statements)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

/// A connection listening on [`CHANGES_CHANNEL`].
pub struct ChangeListener(sqlx::postgres::PgListener);

impl Store {
    pub async fn listen_for_changes(&self) -> Result<ChangeListener, Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(ChangeListener(listener))
    }
}

impl ChangeListener {
    /// Waits for the next notification: `true`; `false` when the connection
    /// was lost (and is re-established on the next call), so notifications
    /// may have been missed.
    pub async fn wait(&mut self) -> Result<bool, Error> {
        Ok(self.0.try_recv().await?.is_some())
    }
}
