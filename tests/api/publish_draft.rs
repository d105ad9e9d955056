//! PublishDraft: one event per draft, linked in one transaction; the fast
//! path for repeats; scheduling with `publish_at`.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn first_publish_creates_the_event_and_links_the_draft() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;

    let published = app.publish(&org, &draft.id).await.unwrap();

    assert!(!published.already_published);
    let event = published.event.unwrap();
    let linked = published.draft.unwrap();
    assert_eq!(event.id, published.event_id);
    assert_eq!(event.draft_id, draft.id);
    assert_eq!(
        (&event.title, &event.description, &event.location),
        (&draft.title, &draft.description, &draft.location)
    );
    assert_eq!((event.starts_at, event.ends_at), (draft.starts_at, draft.ends_at));
    assert_eq!(event.status(), pb::EventStatus::Published);
    assert_eq!(linked.event_id, published.event_id);
    assert_eq!(linked.status(), pb::DraftStatus::Published);
    assert_eq!(linked.version, draft.version + 1);
    assert_eq!(linked.publish_time, event.publish_time);
    assert!(linked.publish_time.is_some());
}

#[tokio::test]
async fn second_publish_returns_the_first_event_without_writing() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    let first = app.publish(&org, &draft.id).await.unwrap();

    let second = app.publish(&org.to_uppercase(), &draft.id.to_uppercase()).await.unwrap();

    assert!(second.already_published);
    assert_eq!(second.event_id, first.event_id);
    assert_eq!(second.event, first.event);
    assert_eq!(second.draft.unwrap().version, 2, "the fast path does not write");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn incomplete_draft_lists_every_missing_field() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let request = pb::CreateDraftRequest {
        organization_id: org.clone(),
        title: "   ".into(),
        starts_at: Some(ts(1_900_000_000)),
        ..Default::default()
    };
    let draft = app.create(request).await;

    let status = app.publish(&org, &draft.id).await.unwrap_err();

    let details = assert_error(&status, Code::FailedPrecondition, "DRAFT_INCOMPLETE");
    let violations = &details.precondition_failure().expect("PreconditionFailure").violations;
    let subjects: Vec<_> = violations.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["title", "ends_at"]);
    assert!(violations.iter().all(|v| v.r#type == "DRAFT_INCOMPLETE"));
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn zero_length_event_is_incomplete() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let request = pb::CreateDraftRequest { ends_at: Some(ts(1_900_000_000)), ..complete_draft_request(&org) };
    let draft = app.create(request).await;

    let status = app.publish(&org, &draft.id).await.unwrap_err();

    let details = assert_error(&status, Code::FailedPrecondition, "DRAFT_INCOMPLETE");
    assert_eq!(details.precondition_failure().unwrap().violations[0].subject, "ends_at");
}

#[tokio::test]
async fn future_publish_at_schedules_until_that_instant() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let at = prost_types::Timestamp { seconds: app.now().unix_seconds() + 3600, nanos: 250_000_000 };

    let published = app.publish_draft(draft.publish_at_request(Some(at))).await.unwrap();

    assert_eq!(published.draft.as_ref().unwrap().status(), pb::DraftStatus::Scheduled);
    assert_eq!(published.event.as_ref().unwrap().status(), pb::EventStatus::Scheduled);
    assert_eq!(published.event.as_ref().unwrap().publish_time, Some(at));

    app.clock.advance(Duration::from_secs(3601));
    let event = app.fetch_event(&draft.organization_id, &published.event_id).await;
    let later = app.fetch_draft(&draft.organization_id, &draft.id).await;
    assert_eq!(event.status(), pb::EventStatus::Published);
    assert_eq!(later.status(), pb::DraftStatus::Published);
}

#[tokio::test]
async fn past_publish_at_publishes_now() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let before = app.now();

    let published = app.publish_draft(draft.publish_at_request(Some(ts(1_000_000_000)))).await.unwrap();

    let event = published.event.unwrap();
    assert_eq!(event.status(), pb::EventStatus::Published);
    assert!(event.publish_time.unwrap().seconds >= before.unix_seconds());
}

#[tokio::test]
async fn republish_with_another_publish_at_changes_nothing() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let first = app.publish_draft(draft.publish_request()).await.unwrap();
    let in_a_week = ts(app.now().unix_seconds() + 604_800);

    let again = app.publish_draft(draft.publish_at_request(Some(in_a_week))).await.unwrap();

    assert!(again.already_published);
    assert_eq!(again.event, first.event);
    assert_eq!(again.draft, first.draft);
}

#[tokio::test]
async fn publish_validates_its_request() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let beyond_9999 = ts(253_402_300_800);

    let status = app.publish_draft(draft.publish_at_request(Some(beyond_9999))).await.unwrap_err();
    assert_invalid_field(&status, "publish_at");

    let request =
        pb::PublishDraftRequest { organization_id: draft.organization_id.clone(), ..Default::default() };
    let status = app.publish_draft(request).await.unwrap_err();
    assert_invalid_field(&status, "draft_id");

    let status = app.publish(&draft.organization_id, &new_id()).await.unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0);
}

/// Drafts written before migration 0003 carry `publishable = false`: the
/// one-statement publish leaves them alone and the service checks their
/// content itself, publishing the complete ones and refusing the others.
#[tokio::test]
async fn drafts_written_before_the_publishable_flag_publish_as_before() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let complete = app.complete_draft(&org).await;
    let incomplete =
        app.create(pb::CreateDraftRequest { organization_id: org.clone(), ..Default::default() }).await;
    sqlx::query("UPDATE drafts SET publishable = false").execute(&app.db).await.unwrap();

    let published = app.publish(&org, &complete.id).await.unwrap();
    let refused = app.publish(&org, &incomplete.id).await.unwrap_err();

    assert!(!published.already_published);
    assert_eq!(app.fetch_event(&org, &published.event_id).await.draft_id, complete.id);
    assert_error(&refused, Code::FailedPrecondition, "DRAFT_INCOMPLETE");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.db).await.unwrap();
    assert_eq!(events, 1);
}
