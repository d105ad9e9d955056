//! UpdateDraft: only the masked fields change, optimistic concurrency loses
//! no update, and published drafts are immutable.

use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn changes_only_the_masked_fields_and_bumps_the_version() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let request = pb::UpdateDraftRequest {
        title: "Renamed".into(),
        location: "ignored: not in the mask".into(),
        ..draft.update_request(&["title", "ends_at"])
    };

    let updated = app.update(request).await;

    assert_eq!(updated.title, "Renamed");
    assert_eq!(updated.location, draft.location);
    assert_eq!(updated.description, draft.description);
    assert_eq!(updated.starts_at, draft.starts_at);
    assert_eq!(updated.ends_at, None, "a masked, unset timestamp clears the field");
    assert_eq!(updated.version, 2);
    let (before, after) = (draft.update_time.unwrap(), updated.update_time.unwrap());
    assert!((after.seconds, after.nanos) > (before.seconds, before.nanos));
    assert_eq!(updated.create_time, draft.create_time);
}

#[tokio::test]
async fn empty_or_unknown_mask_is_invalid() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;

    for paths in [&[][..], &["status"], &["title", "event_id"], &["startsAt"]] {
        let status = app.update_draft(draft.update_request(paths)).await.unwrap_err();
        assert_error(&status, Code::InvalidArgument, "INVALID_REQUEST");
        assert_invalid_field(&status, "update_mask");
    }
    let no_mask = pb::UpdateDraftRequest { update_mask: None, ..draft.update_request(&[]) };
    let status = app.update_draft(no_mask).await.unwrap_err();
    assert_invalid_field(&status, "update_mask");
}

#[tokio::test]
async fn may_not_leave_the_end_before_the_start() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let request =
        pb::UpdateDraftRequest { starts_at: Some(ts(1_950_000_000)), ..draft.update_request(&["starts_at"]) };

    let status = app.update_draft(request).await.unwrap_err();

    assert_invalid_field(&status, "starts_at");
    assert_eq!(app.count("SELECT max(version) FROM drafts").await, 1);
}

#[tokio::test]
async fn stale_expected_version_is_aborted_and_nothing_is_lost() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let title = |title: &str| pb::UpdateDraftRequest {
        title: title.into(),
        expected_version: 1,
        ..draft.update_request(&["title"])
    };

    app.update(title("First")).await;
    let status = app.update_draft(title("Second")).await.unwrap_err();

    let details = assert_error(&status, Code::Aborted, "VERSION_MISMATCH");
    assert_eq!(details.error_info().unwrap().metadata["current_version"], "2");
    assert_eq!(app.fetch_draft(&draft.organization_id, &draft.id).await.title, "First");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_that_read_one_version_are_retried_and_all_kept() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let requests = [
        pb::UpdateDraftRequest { title: "T".into(), ..draft.update_request(&["title"]) },
        pb::UpdateDraftRequest { description: "D".into(), ..draft.update_request(&["description"]) },
        pb::UpdateDraftRequest { location: "L".into(), ..draft.update_request(&["location"]) },
    ];
    // Each update reads version 1, then waits for the row: once all three
    // wait, at most one can write version 1 and the others must retry.
    let holder = app.hold_draft(&draft.id).await;
    let mut calls = Vec::new();
    for request in requests {
        let client = app.connect().await;
        calls.push(tokio::spawn(async move { client.update(request).await }));
    }
    app.until_calls_wait_on_locks(3).await;

    holder.commit().await.unwrap();

    let mut versions = Vec::new();
    for call in calls {
        versions.push(call.await.expect("the update answered").version);
    }
    versions.sort();
    assert_eq!(versions, [2, 3, 4], "each update wrote a version of its own");
    let stored = app.fetch_draft(&draft.organization_id, &draft.id).await;
    assert_eq!(
        (stored.title.as_str(), stored.description.as_str(), stored.location.as_str()),
        ("T", "D", "L")
    );
    assert_eq!(stored.version, 4);
}

#[tokio::test]
async fn published_and_scheduled_drafts_are_immutable() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let published = app.complete_draft(&org).await;
    app.publish(&org, &published.id).await.unwrap();
    let scheduled = app.complete_draft(&org).await;
    let in_an_hour = ts(app.now().unix_seconds() + 3600);
    app.publish_draft(scheduled.publish_at_request(Some(in_an_hour))).await.unwrap();

    for draft in [&published, &scheduled] {
        let request = pb::UpdateDraftRequest { title: "Too late".into(), ..draft.update_request(&["title"]) };
        let status = app.update_draft(request).await.unwrap_err();
        assert_error(&status, Code::FailedPrecondition, "DRAFT_ALREADY_PUBLISHED");
    }
    assert_eq!(app.count("SELECT count(*) FROM drafts WHERE title = 'Too late'").await, 0);
}

#[tokio::test]
async fn unknown_draft_is_not_found() {
    let app = TestApp::spawn().await;
    let request = pb::UpdateDraftRequest {
        organization_id: new_id(),
        draft_id: new_id(),
        update_mask: Some(mask(&["title"])),
        ..Default::default()
    };

    let status = app.update_draft(request).await.unwrap_err();

    assert_error(&status, Code::NotFound, "DRAFT_NOT_FOUND");
}
