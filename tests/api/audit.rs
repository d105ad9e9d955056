//! The audit catches every kind of broken invariant. The schema forbids
//! these states, so each case first drops the constraints that guard them in
//! its own database — the drift, manual SQL or restored backup the audit is
//! there to catch — then seeds the state with raw SQL.

use std::process::Command;

use draft_publisher::{
    PoolSettings, Store,
    audit::{self, ViolationKind},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::*;

/// A database with one published draft (and its event) and one unpublished
/// draft, made through the service.
struct Seeded {
    app: TestApp,
    published: Uuid,
    event: Uuid,
    unpublished: Uuid,
}

async fn seeded() -> Seeded {
    let app = spawn_app().await;
    let org = new_id();
    let published = app.complete_draft(&org).await.id;
    let event = app.publish(&org, &published).await.expect("published").event_id;
    let unpublished = app.complete_draft(&org).await.id;
    let uuid = |s: &str| Uuid::parse_str(s).unwrap();
    Seeded { published: uuid(&published), event: uuid(&event), unpublished: uuid(&unpublished), app }
}

async fn drop_constraints(db: &PgPool, constraints: &[&str]) {
    for constraint in constraints {
        let table = if constraint.starts_with("events_") { "events" } else { "drafts" };
        let sql = format!("ALTER TABLE {table} DROP CONSTRAINT {constraint}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(db).await.unwrap();
    }
}

async fn link(db: &PgPool, draft: Uuid, event: Option<Uuid>, status: &str) {
    sqlx::query("UPDATE drafts SET event_id = $2, status = $3, publish_time = now() WHERE id = $1")
        .bind(draft)
        .bind(event)
        .bind(status)
        .execute(db)
        .await
        .unwrap();
}

async fn audit_of(app: &TestApp) -> Vec<(ViolationKind, Vec<Uuid>, Vec<Uuid>)> {
    let store = Store::connect_lazy(app.database_url(), &PoolSettings::default()).unwrap();
    let report = store.audit().await.expect("audit runs");
    store.close().await;
    report.violations.into_iter().map(|v| (v.kind, v.draft_ids, v.event_ids)).collect()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_database_written_by_the_service_audits_clean() {
    let seeded = seeded().await;

    assert_eq!(audit_of(&seeded.app).await, []);
}

#[tokio::test]
async fn each_kind_of_violation_is_reported_with_its_ids() {
    use ViolationKind::*;
    let stray = Uuid::now_v7();

    for case in 0..7 {
        let Seeded { app, published: d, event: e, unpublished: u } = seeded().await;
        let db = &app.db;
        let expected = match case {
            0 => {
                // A second event for a published draft.
                drop_constraints(db, &["events_draft_id_key", "events_draft_links_back_fkey"]).await;
                insert_event_copy(db, stray, d).await;
                vec![
                    (DraftWithSeveralEvents, vec![d], sorted(vec![e, stray])),
                    (OrphanEvent, vec![d], vec![stray]),
                ]
            }
            1 => {
                // A second draft naming the same event.
                drop_constraints(db, &["drafts_event_id_key", "drafts_event_links_back_fkey"]).await;
                link(db, u, Some(e), "published").await;
                vec![
                    (EventWithSeveralDrafts, sorted(vec![d, u]), vec![e]),
                    (BrokenBackPointer, vec![u], vec![e]),
                ]
            }
            2 => {
                // An event its draft does not name.
                drop_constraints(db, &["events_draft_links_back_fkey"]).await;
                insert_event_copy(db, stray, u).await;
                vec![(OrphanEvent, vec![u], vec![stray])]
            }
            3 => {
                // Published without an event.
                drop_constraints(db, &["drafts_published_iff_linked"]).await;
                link(db, u, None, "published").await;
                vec![(StatusMismatch, vec![u], vec![])]
            }
            4 => {
                // Linked to an event but back to status draft.
                drop_constraints(db, &["drafts_published_iff_linked"]).await;
                link(db, d, Some(e), "draft").await;
                vec![(StatusMismatch, vec![d], vec![e])]
            }
            5 => {
                // A draft naming an event that does not exist.
                drop_constraints(db, &["drafts_event_links_back_fkey"]).await;
                link(db, u, Some(stray), "published").await;
                vec![(BrokenBackPointer, vec![u], vec![stray])]
            }
            _ => {
                // An event moved to another organisation than its draft's.
                drop_constraints(db, &["events_draft_organization_fkey"]).await;
                sqlx::query("UPDATE events SET organization_id = $1 WHERE id = $2")
                    .bind(Uuid::now_v7())
                    .bind(e)
                    .execute(db)
                    .await
                    .unwrap();
                vec![(OrganizationMismatch, vec![d], vec![e])]
            }
        };

        assert_eq!(audit_of(&app).await, expected, "case {case}");
    }
}

fn run_audit(database_url: &str) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_draft-publisher"))
        .arg("audit")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("draft-publisher audit runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn audit_command_exits_zero_with_one_line_on_a_clean_database() {
    let seeded = seeded().await;

    let (code, stdout, stderr) = run_audit(seeded.app.database_url());

    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout, "audit clean: 2 drafts, 1 events, no violations\n");
}

#[tokio::test]
async fn audit_command_prints_each_violation_and_exits_non_zero() {
    let Seeded { app, published, event, unpublished } = seeded().await;
    let constraints = ["drafts_published_iff_linked", "events_draft_id_key", "events_draft_links_back_fkey"];
    drop_constraints(&app.db, &constraints).await;
    link(&app.db, unpublished, None, "published").await;
    let orphan = Uuid::now_v7();
    insert_event_copy(&app.db, orphan, published).await;

    let (code, stdout, stderr) = run_audit(app.database_url());

    assert_eq!(code, Some(i32::from(audit::EXIT_VIOLATIONS)), "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("I1 draft_with_several_events")
        && l.contains(&published.to_string())
        && l.contains(&event.to_string())
        && l.contains(&orphan.to_string())));
    assert!(lines.iter().any(|l| l.starts_with("I3 orphan_event") && l.contains(&orphan.to_string())));
    assert!(
        lines.iter().any(|l| l.starts_with("I3 status_mismatch") && l.contains(&unpublished.to_string()))
    );
    assert_eq!(lines[3], "audit FAILED: 3 violation(s) in 2 drafts, 2 events");
    assert!(stderr.contains("3 invariant violation(s)"), "{stderr}");
}

#[tokio::test]
async fn audit_command_that_cannot_reach_the_database_exits_one() {
    let (code, stdout, stderr) = run_audit("postgres://postgres@127.0.0.1:1/none");

    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout, "");
}
