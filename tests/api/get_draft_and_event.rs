use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn get_draft_returns_the_stored_draft() {
    let app = spawn_app().await;
    let org = new_id();
    let created = app.complete_draft(&org).await;

    let request =
        pb::GetDraftRequest { organization_id: org.to_uppercase(), draft_id: created.id.to_uppercase() };
    let fetched = app.client.clone().get_draft(request).await.unwrap().into_inner().draft.unwrap();

    assert_eq!(fetched, created);
}

#[tokio::test]
async fn drafts_and_events_of_another_organisation_are_not_found() {
    let app = spawn_app().await;
    let (org, intruder) = (new_id(), new_id());
    let draft = app.complete_draft(&org).await;
    let event_id = app.publish(&org, &draft.id).await.unwrap().event_id;

    let get_draft = pb::GetDraftRequest { organization_id: intruder.clone(), draft_id: draft.id.clone() };
    let status = app.client.clone().get_draft(get_draft).await.unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");

    let get_event = pb::GetEventRequest { organization_id: intruder.clone(), event_id: event_id.clone() };
    let status = app.client.clone().get_event(get_event).await.unwrap_err();
    assert_error(&status, Code::NotFound, "EVENT_NOT_FOUND");

    let status = app.publish(&intruder, &draft.id).await.unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_ids_invalid() {
    let app = spawn_app().await;
    let org = new_id();

    let status = app
        .client
        .clone()
        .get_draft(pb::GetDraftRequest { organization_id: org.clone(), draft_id: new_id() })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");

    let status = app
        .client
        .clone()
        .get_event(pb::GetEventRequest { organization_id: org.clone(), event_id: new_id() })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "EVENT_NOT_FOUND");

    let status = app
        .client
        .clone()
        .get_draft(pb::GetDraftRequest { organization_id: org.clone(), draft_id: "{x}".into() })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "draft_id");

    let status = app
        .client
        .clone()
        .get_event(pb::GetEventRequest {
            organization_id: String::new(),
            event_id: new_id().replace('-', ""),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "organization_id");
    assert_invalid_field(&status, "event_id");
}

#[tokio::test]
async fn get_event_returns_the_published_copy() {
    let app = spawn_app().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    let published = app.publish(&org, &draft.id).await.unwrap();

    let request = pb::GetEventRequest { organization_id: org.clone(), event_id: published.event_id.clone() };
    let event = app.client.clone().get_event(request).await.unwrap().into_inner().event.unwrap();

    assert_eq!(Some(&event), published.event.as_ref());
    assert_eq!(event.draft_id, draft.id);
    assert_eq!((event.title.as_str(), event.location.as_str()), ("Rust meetup", "Berlin"));
    assert_eq!(event.status(), pb::EventStatus::Published);
}
