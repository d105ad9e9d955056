//! The audit catches every kind of broken invariant. The schema forbids
//! these states, so each case first drops the constraints that guard them in
//! its own database — the drift, manual SQL or restored backup the audit is
//! there to catch — then seeds the state with raw SQL.

use draft_publisher::{
    PoolSettings, Store, Timestamp,
    audit::{self, ViolationKind},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{binary::run_audit, database::UNREACHABLE_DATABASE_URL, rows::insert_event_copy, *};

/// A database with one published draft (and its event) and one unpublished
/// draft, made through the service.
struct Seeded {
    app: TestApp,
    published: Uuid,
    event: Uuid,
    unpublished: Uuid,
}

async fn seeded() -> Seeded {
    let app = TestApp::spawn().await;
    let org = new_id();
    let published = app.complete_draft(&org).await.id;
    let event = app.publish(&org, &published).await.expect("published").event_id;
    let unpublished = app.complete_draft(&org).await.id;
    let uuid = |s: &str| Uuid::parse_str(s).unwrap();
    Seeded { published: uuid(&published), event: uuid(&event), unpublished: uuid(&unpublished), app }
}

async fn drop_constraints(db: &PgPool, constraints: &[&str]) {
    for constraint in constraints {
        let table = ["event_changes", "events", "drafts"]
            .into_iter()
            .find(|table| constraint.starts_with(&format!("{table}_")))
            .expect("a constraint of a known table");
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

type Found = (ViolationKind, Vec<Uuid>, Vec<Uuid>);

async fn audit_of(app: &TestApp) -> Vec<Found> {
    audit_with_unsent_before(app, None).await
}

async fn audit_with_unsent_before(app: &TestApp, unsent_before: Option<Timestamp>) -> Vec<Found> {
    let store = Store::connect_lazy(app.database_url(), &PoolSettings::default()).unwrap();
    let report = store.audit(unsent_before).await.expect("audit runs");
    store.close().await;
    report.violations.into_iter().map(|v| (v.kind, v.draft_ids, v.event_ids)).collect()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// A state the constraints forbid, as drift would leave it.
#[derive(Debug, Clone, Copy)]
enum Drift {
    SecondEventOfAPublishedDraft,
    SecondDraftNamingTheSameEvent,
    EventItsDraftDoesNotName,
    PublishedWithoutAnEvent,
    LinkedButBackToStatusDraft,
    DraftNamingAMissingEvent,
    EventInAnotherOrganisationThanItsDraft,
    EventWithoutItsPublishedChange,
    ChangeOfAMissingEvent,
    PublishedPositionedBeforeScheduled,
}

impl Drift {
    /// Seeds the drift into `seeded`'s database; returns what the audit
    /// must report.
    async fn seed(self, seeded: &Seeded) -> Vec<Found> {
        use ViolationKind::*;
        let Seeded { app, published: d, event: e, unpublished: u } = seeded;
        let (db, d, e, u, stray) = (&app.db, *d, *e, *u, Uuid::now_v7());
        match self {
            Self::SecondEventOfAPublishedDraft => {
                drop_constraints(db, &["events_draft_id_key", "events_draft_links_back_fkey"]).await;
                insert_event_copy(db, stray, d).await;
                vec![
                    (DraftWithSeveralEvents, vec![d], sorted(vec![e, stray])),
                    (OrphanEvent, vec![d], vec![stray]),
                    (EventWithoutItsChanges, vec![d], vec![stray]),
                ]
            }
            Self::SecondDraftNamingTheSameEvent => {
                drop_constraints(db, &["drafts_event_id_key", "drafts_event_links_back_fkey"]).await;
                link(db, u, Some(e), "published").await;
                vec![
                    (EventWithSeveralDrafts, sorted(vec![d, u]), vec![e]),
                    (BrokenBackPointer, vec![u], vec![e]),
                ]
            }
            Self::EventItsDraftDoesNotName => {
                drop_constraints(db, &["events_draft_links_back_fkey"]).await;
                insert_event_copy(db, stray, u).await;
                vec![(OrphanEvent, vec![u], vec![stray]), (EventWithoutItsChanges, vec![u], vec![stray])]
            }
            Self::PublishedWithoutAnEvent => {
                drop_constraints(db, &["drafts_published_iff_linked"]).await;
                link(db, u, None, "published").await;
                vec![(StatusMismatch, vec![u], vec![])]
            }
            Self::LinkedButBackToStatusDraft => {
                drop_constraints(db, &["drafts_published_iff_linked"]).await;
                link(db, d, Some(e), "draft").await;
                vec![(StatusMismatch, vec![d], vec![e])]
            }
            Self::DraftNamingAMissingEvent => {
                drop_constraints(db, &["drafts_event_links_back_fkey"]).await;
                link(db, u, Some(stray), "published").await;
                vec![(BrokenBackPointer, vec![u], vec![stray])]
            }
            Self::EventInAnotherOrganisationThanItsDraft => {
                drop_constraints(db, &["events_draft_organization_fkey"]).await;
                let moved = sqlx::query("UPDATE events SET organization_id = $1 WHERE id = $2");
                moved.bind(Uuid::now_v7()).bind(e).execute(db).await.unwrap();
                // Its change stays in the draft's organisation: C2 sees that too.
                vec![(OrganizationMismatch, vec![d], vec![e]), (ChangeWithoutItsEvent, vec![d], vec![e])]
            }
            Self::EventWithoutItsPublishedChange => {
                sqlx::query("DELETE FROM event_changes WHERE event_id = $1")
                    .bind(e)
                    .execute(db)
                    .await
                    .unwrap();
                vec![(EventWithoutItsChanges, vec![d], vec![e])]
            }
            Self::ChangeOfAMissingEvent => {
                drop_constraints(db, &["event_changes_event_id_fkey"]).await;
                sqlx::query(
                    "INSERT INTO event_changes (event_id, kind, organization_id, change_time) \
                     SELECT $1, 2, organization_id, change_time FROM event_changes WHERE event_id = $2",
                )
                .bind(stray)
                .bind(e)
                .execute(db)
                .await
                .unwrap();
                vec![(ChangeWithoutItsEvent, vec![], vec![stray])]
            }
            Self::PublishedPositionedBeforeScheduled => {
                until_positioned(db, e).await;
                // The event as if scheduled an hour before its publish time,
                // its SCHEDULED change written after the PUBLISHED one.
                sqlx::query(
                    r#"
                    WITH event AS (
                        UPDATE events SET create_time = publish_time - interval '1 hour' WHERE id = $1
                        RETURNING id, organization_id, create_time
                    )
                    INSERT INTO event_changes (event_id, kind, organization_id, change_time)
                    SELECT id, 1, organization_id, create_time FROM event
                    "#,
                )
                .bind(e)
                .execute(db)
                .await
                .unwrap();
                vec![(ChangesOutOfOrder, vec![], vec![e])]
            }
        }
    }
}

/// Waits until the sequencer has positioned the event's changes.
async fn until_positioned(db: &PgPool, event: Uuid) {
    until("the event's changes positioned", DELIVERY_WITHIN, || async {
        let unpositioned: i64 =
            sqlx::query_scalar("SELECT count(*) FROM event_changes WHERE event_id = $1 AND position IS NULL")
                .bind(event)
                .fetch_one(db)
                .await
                .unwrap();
        unpositioned == 0
    })
    .await;
}

/// Seeds `drift` into a fresh database and asserts the audit reports
/// exactly what it must, with the ids involved.
async fn assert_audit_reports(drift: Drift) {
    let seeded = seeded().await;
    let expected = drift.seed(&seeded).await;

    assert_eq!(audit_of(&seeded.app).await, expected, "{drift:?}");
}

#[tokio::test]
async fn a_database_written_by_the_service_audits_clean() {
    let seeded = seeded().await;

    assert_eq!(audit_of(&seeded.app).await, []);
}

/// One test per kind of drift, named for what the audit must catch.
macro_rules! audit_reports {
    ($($test:ident: $drift:ident,)*) => {$(
        #[tokio::test]
        async fn $test() {
            assert_audit_reports(Drift::$drift).await;
        }
    )*};
}

audit_reports! {
    a_second_event_of_a_published_draft_is_reported: SecondEventOfAPublishedDraft,
    a_second_draft_naming_the_same_event_is_reported: SecondDraftNamingTheSameEvent,
    an_event_its_draft_does_not_name_is_reported: EventItsDraftDoesNotName,
    a_published_draft_without_an_event_is_reported: PublishedWithoutAnEvent,
    a_linked_draft_back_in_status_draft_is_reported: LinkedButBackToStatusDraft,
    a_draft_naming_a_missing_event_is_reported: DraftNamingAMissingEvent,
    an_event_in_another_organisation_than_its_draft_is_reported: EventInAnotherOrganisationThanItsDraft,
    an_event_without_its_published_change_is_reported: EventWithoutItsPublishedChange,
    a_change_of_a_missing_event_is_reported: ChangeOfAMissingEvent,
    a_published_change_positioned_before_its_scheduled_one_is_reported: PublishedPositionedBeforeScheduled,
}

#[tokio::test]
async fn changes_unsent_past_the_threshold_are_reported_only_when_asked() {
    let Seeded { app, event, .. } = seeded().await;
    let shifted = |by: time::Duration| Timestamp::from_datetime(app.now().as_datetime() + by);
    let (later, earlier) = (shifted(time::Duration::seconds(1)), shifted(time::Duration::hours(-1)));

    let asked = audit_with_unsent_before(&app, Some(later)).await;

    assert_eq!(asked, [(ViolationKind::UnsentChange, vec![], vec![event])]);
    assert_eq!(audit_with_unsent_before(&app, Some(earlier)).await, []);
}

#[tokio::test]
async fn audit_command_exits_zero_with_one_line_on_a_clean_database() {
    let seeded = seeded().await;

    let run = run_audit(seeded.app.database_url());

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "audit clean: 2 drafts, 1 events, no violations\n");
}

#[tokio::test]
async fn audit_command_prints_each_violation_and_exits_non_zero() {
    let Seeded { app, published, event, unpublished } = seeded().await;
    let constraints = ["drafts_published_iff_linked", "events_draft_id_key", "events_draft_links_back_fkey"];
    drop_constraints(&app.db, &constraints).await;
    link(&app.db, unpublished, None, "published").await;
    let orphan = Uuid::now_v7();
    insert_event_copy(&app.db, orphan, published).await;

    let run = run_audit(app.database_url());

    assert_eq!(run.code, Some(i32::from(audit::EXIT_VIOLATIONS)), "{run:?}");
    let lines: Vec<_> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert!(lines.iter().any(|l| l.starts_with("I1 draft_with_several_events")
        && l.contains(&published.to_string())
        && l.contains(&event.to_string())
        && l.contains(&orphan.to_string())));
    assert!(lines.iter().any(|l| l.starts_with("I3 orphan_event") && l.contains(&orphan.to_string())));
    assert!(
        lines.iter().any(|l| l.starts_with("I3 status_mismatch") && l.contains(&unpublished.to_string()))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("C1 event_without_its_changes") && l.contains(&orphan.to_string()))
    );
    assert_eq!(lines[4], "audit FAILED: 4 violation(s) in 2 drafts, 2 events");
    assert!(run.stderr.contains("4 invariant violation(s)"), "{}", run.stderr);
}

#[tokio::test]
async fn audit_command_that_cannot_reach_the_database_exits_one() {
    let run = run_audit(UNREACHABLE_DATABASE_URL);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
}
