//! GetDraft and GetEvent: ids in either letter case, no existence leak
//! across organisations.

use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn get_draft_returns_the_stored_draft() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let created = app.complete_draft(&org).await;

    let fetched = app.fetch_draft(&org.to_uppercase(), &created.id.to_uppercase()).await;

    assert_eq!(fetched, created);
}

#[tokio::test]
async fn drafts_and_events_of_another_organisation_are_not_found() {
    let app = TestApp::spawn().await;
    let (org, intruder) = (new_id(), new_id());
    let draft = app.complete_draft(&org).await;
    let event_id = app.publish(&org, &draft.id).await.unwrap().event_id;

    let status = app.get_draft(get_draft_request(&intruder, &draft.id)).await.unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");

    let status = app.get_event(get_event_request(&intruder, &event_id)).await.unwrap_err();
    assert_error(&status, Code::NotFound, "EVENT_NOT_FOUND");

    let status = app.publish(&intruder, &draft.id).await.unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_ids_invalid() {
    let app = TestApp::spawn().await;
    let org = new_id();

    let status = app.get_draft(get_draft_request(&org, &new_id())).await.unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");

    let status = app.get_event(get_event_request(&org, &new_id())).await.unwrap_err();
    assert_error(&status, Code::NotFound, "EVENT_NOT_FOUND");

    let status = app.get_draft(get_draft_request(&org, "{x}")).await.unwrap_err();
    assert_invalid_field(&status, "draft_id");

    let status = app.get_event(get_event_request("", &new_id().replace('-', ""))).await.unwrap_err();
    assert_invalid_field(&status, "organization_id");
    assert_invalid_field(&status, "event_id");
}

#[tokio::test]
async fn get_event_returns_the_published_copy() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    let published = app.publish(&org, &draft.id).await.unwrap();

    let event = app.fetch_event(&org, &published.event_id).await;

    assert_eq!(Some(&event), published.event.as_ref());
    assert_eq!(event.draft_id, draft.id);
    assert_eq!((event.title.as_str(), event.location.as_str()), ("Rust meetup", "Berlin"));
    assert_eq!(event.status(), pb::EventStatus::Published);
}
