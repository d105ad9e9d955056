use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn creates_a_draft_at_version_one_with_lowercase_ids() {
    let app = TestApp::spawn().await;
    let org = new_id().to_uppercase();
    let request = pb::CreateDraftRequest { title: "Launch ✨".into(), ..complete_draft_request(&org) };

    let draft = app.create(request).await;

    assert_eq!(draft.organization_id, org.to_lowercase());
    assert_eq!(draft.id, draft.id.to_lowercase());
    assert_eq!(draft.title, "Launch ✨");
    assert_eq!(draft.location, "Berlin");
    assert_eq!(draft.starts_at, Some(ts(1_900_000_000)));
    assert_eq!(draft.status(), pb::DraftStatus::Draft);
    assert_eq!(draft.version, 1);
    assert!(draft.event_id.is_empty());
    assert!(draft.publish_time.is_none());
    assert!(draft.create_time.is_some());
    assert_eq!(draft.create_time, draft.update_time);
}

#[tokio::test]
async fn accepts_incomplete_content() {
    let app = TestApp::spawn().await;
    let request = pb::CreateDraftRequest { organization_id: new_id(), ..Default::default() };

    let draft = app.create(request).await;

    assert_eq!(draft.title, "");
    assert!(draft.starts_at.is_none() && draft.ends_at.is_none());
}

#[tokio::test]
async fn same_request_id_yields_the_same_draft() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let request = pb::CreateDraftRequest { request_id: new_id(), ..complete_draft_request(&org) };

    let first = app.create(request.clone()).await;
    let again = app.create(request.clone()).await;
    // The key is scoped to the organisation.
    let other_org = pb::CreateDraftRequest { organization_id: new_id(), ..request };
    let other = app.create(other_org).await;

    assert_eq!(first, again);
    assert_ne!(other.id, first.id);
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 2);
}

#[tokio::test]
async fn request_id_reused_with_other_content_is_rejected() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let request = pb::CreateDraftRequest { request_id: new_id(), ..complete_draft_request(&org) };
    app.create_draft(request.clone()).await.unwrap();

    let changed = pb::CreateDraftRequest { title: "Another title".into(), ..request.clone() };
    let status = app.create_draft(changed).await.unwrap_err();

    assert_error(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_invalid_field(&status, "request_id");
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 1);
}

#[tokio::test]
async fn retry_after_the_draft_changed_still_returns_it() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let request = pb::CreateDraftRequest { request_id: new_id(), ..complete_draft_request(&org) };
    let draft = app.create(request.clone()).await;
    app.publish(&org, &draft.id).await.unwrap();

    let again = app.create(request).await;

    assert_eq!(again.id, draft.id);
    assert_eq!(again.status(), pb::DraftStatus::Published);
}

#[tokio::test]
async fn invalid_content_is_rejected_field_by_field() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let base = complete_draft_request(&org);
    let cases: Vec<(&str, pb::CreateDraftRequest)> = vec![
        ("organization_id", pb::CreateDraftRequest { organization_id: String::new(), ..base.clone() }),
        ("organization_id", pb::CreateDraftRequest { organization_id: "not-a-uuid".into(), ..base.clone() }),
        ("request_id", pb::CreateDraftRequest { request_id: "1234".into(), ..base.clone() }),
        ("title", pb::CreateDraftRequest { title: "t".repeat(201), ..base.clone() }),
        ("title", pb::CreateDraftRequest { title: "a\0b".into(), ..base.clone() }),
        ("location", pb::CreateDraftRequest { location: "ü".repeat(501), ..base.clone() }),
        ("description", pb::CreateDraftRequest { description: "d".repeat(10_001), ..base.clone() }),
        ("ends_at", pb::CreateDraftRequest { ends_at: Some(ts(1_899_999_999)), ..base.clone() }),
        ("starts_at", pb::CreateDraftRequest { starts_at: Some(ts(253_402_300_800)), ..base.clone() }),
        (
            "ends_at",
            pb::CreateDraftRequest {
                ends_at: Some(prost_types::Timestamp { seconds: 1_900_007_200, nanos: -1 }),
                ..base.clone()
            },
        ),
    ];

    for (field, request) in cases {
        let status = app.create_draft(request).await.unwrap_err();
        assert_error(&status, Code::InvalidArgument, "INVALID_REQUEST");
        assert_invalid_field(&status, field);
    }
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 0);
}

#[tokio::test]
async fn limits_are_inclusive_and_count_characters() {
    let app = TestApp::spawn().await;
    let request = pb::CreateDraftRequest {
        title: "é".repeat(200),
        location: "🎉".repeat(500),
        description: "d".repeat(10_000),
        ..complete_draft_request(&new_id())
    };

    let draft = app.create(request).await;

    assert_eq!(draft.title.chars().count(), 200);
    assert_eq!(draft.location.chars().count(), 500);
}

#[tokio::test]
async fn every_violation_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let request = pb::CreateDraftRequest {
        organization_id: "nope".into(),
        title: "x".repeat(300),
        ..Default::default()
    };

    let status = app.create_draft(request).await.unwrap_err();

    assert_invalid_field(&status, "organization_id");
    assert_invalid_field(&status, "title");
}
