//! Tenant isolation: one organisation can neither see nor change another's
//! drafts and events, even knowing their ids.

use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::*;

/// Every row of both tables, as text, in a stable order.
async fn snapshot(app: &TestApp) -> (String, String) {
    let drafts =
        sqlx::query_scalar("SELECT coalesce(string_agg(d::text, E'\\n' ORDER BY d.id), '') FROM drafts d")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let events =
        sqlx::query_scalar("SELECT coalesce(string_agg(e::text, E'\\n' ORDER BY e.id), '') FROM events e")
            .fetch_one(&app.db)
            .await
            .unwrap();
    (drafts, events)
}

#[tokio::test]
async fn another_organisations_ids_are_not_found_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let (org_a, org_b) = (new_id(), new_id());
    let own_draft = app.complete_draft(&org_a).await;
    let request_id = new_id();
    let b_request =
        pb::CreateDraftRequest { request_id: request_id.clone(), ..complete_draft_request(&org_b) };
    let b_draft = app.create(b_request).await;
    let b_published = app.complete_draft(&org_b).await;
    let b_event_id = app.publish(&org_b, &b_published.id).await.unwrap().event_id;
    let before = snapshot(&app).await;

    let get_draft = app.get_draft(get_draft_request(&org_a, &b_draft.id)).await;
    let update_draft = app
        .update_draft(pb::UpdateDraftRequest {
            organization_id: org_a.clone(),
            title: "Taken over".into(),
            ..b_draft.update_request(&["title"])
        })
        .await;
    let publish_unpublished = app.publish(&org_a, &b_draft.id).await;
    let publish_published = app.publish(&org_a, &b_published.id).await;
    let get_event = app.get_event(get_event_request(&org_a, &b_event_id)).await;
    let listed = app
        .list_drafts(pb::ListDraftsRequest { organization_id: org_a.clone(), ..Default::default() })
        .await
        .unwrap();

    assert_error(&get_draft.unwrap_err(), Code::NotFound, "DRAFT_NOT_FOUND");
    assert_error(&update_draft.unwrap_err(), Code::NotFound, "DRAFT_NOT_FOUND");
    assert_error(&publish_unpublished.unwrap_err(), Code::NotFound, "DRAFT_NOT_FOUND");
    assert_error(&publish_published.unwrap_err(), Code::NotFound, "DRAFT_NOT_FOUND");
    assert_error(&get_event.unwrap_err(), Code::NotFound, "EVENT_NOT_FOUND");
    let listed: Vec<_> = listed.drafts.into_iter().map(|d| d.id).collect();
    assert_eq!(listed, [own_draft.id]);
    assert_eq!(snapshot(&app).await, before, "a call changed another organisation's rows");

    // A request_id is the organisation's own: B's does not reach B's draft.
    let reused = pb::CreateDraftRequest { request_id, ..complete_draft_request(&org_a) };
    let created = app.create(reused).await;
    assert_ne!(created.id, b_draft.id);
    assert_eq!(created.organization_id, org_a);
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 4);
    let (drafts_after, events_after) = snapshot(&app).await;
    assert_eq!(events_after, before.1);
    for row in before.0.lines() {
        assert!(drafts_after.lines().any(|r| r == row), "B's draft changed: {row}");
    }
}
