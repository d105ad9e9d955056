//! `draft-publisher audit`: checks the contract's invariants I1–I3 and the
//! change feed's C1–C4 (see migrations/0002) on a live
//! database and reports every violation with its ids, one per line.

use std::{fmt::Write as _, time::Duration};

use anyhow::Context;
use uuid::Uuid;

pub use crate::store::{AuditReport, Violation, ViolationKind};
use crate::{
    domain::{Clock, SystemClock, Timestamp},
    store::{PoolSettings, Store},
};

/// The audit found broken invariants (the report has been printed).
#[derive(Debug, thiserror::Error)]
#[error("the audit found {0} invariant violation(s)")]
pub struct ViolationsFound(pub usize);

/// Process exit status when the audit ran and found violations; an audit
/// that could not run at all exits with 1, like every failed command.
pub const EXIT_VIOLATIONS: u8 = 2;

fn ids(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
}

/// One line per violation: invariant, kind, ids, and what was found.
pub fn format_violation(violation: &Violation) -> String {
    let mut line = format!("{} {}", violation.kind.invariant(), violation.kind.name());
    if !violation.draft_ids.is_empty() {
        let _ = write!(line, " draft_id={}", ids(&violation.draft_ids));
    }
    if !violation.event_ids.is_empty() {
        let _ = write!(line, " event_id={}", ids(&violation.event_ids));
    }
    let _ = write!(line, ": {}", violation.detail);
    line
}

/// The whole report, as printed: the violations, then a one-line summary.
pub fn format_report(report: &AuditReport) -> String {
    let mut text = String::new();
    for violation in &report.violations {
        text.push_str(&format_violation(violation));
        text.push('\n');
    }
    let _ = if report.violations.is_empty() {
        writeln!(text, "audit clean: {} drafts, {} events, no violations", report.drafts, report.events)
    } else {
        writeln!(
            text,
            "audit FAILED: {} violation(s) in {} drafts, {} events",
            report.violations.len(),
            report.drafts,
            report.events
        )
    };
    text
}

/// The process exit status for a failed command: `EXIT_VIOLATIONS` when
/// the audit found violations, 1 for any other failure.
pub fn exit_code(error: &anyhow::Error) -> std::process::ExitCode {
    if error.downcast_ref::<ViolationsFound>().is_some() {
        std::process::ExitCode::from(EXIT_VIOLATIONS)
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Audits the database at `database_url` (never creating or migrating it),
/// printing the report on stdout. Violations are an error: the process
/// exits non-zero.
pub async fn run(database_url: &str, unsent_after: Option<Duration>) -> anyhow::Result<()> {
    // The checks scan whole tables: no statement timeout, and one connection
    // is all they need.
    let settings = PoolSettings {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::ZERO,
        // Run against PostgreSQL itself, like `migrate`.
        ..PoolSettings::default()
    };
    let store = Store::connect_lazy(database_url, &settings)?;
    let unsent_before =
        unsent_after.map(|age| Timestamp::from_datetime(SystemClock.now().as_datetime() - age));
    let report = store.audit(unsent_before).await.context("auditing the database");
    store.close().await;
    let report = report?;
    print!("{}", format_report(&report));
    match report.violations.len() {
        0 => Ok(()),
        n => Err(ViolationsFound(n).into()),
    }
}
