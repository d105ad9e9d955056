use std::sync::Arc;

use draft_publisher::{App, PoolSettings, Store, SystemClock, proto::v1 as pb, server::ServerSettings};
use tonic::Code;

use crate::helpers::*;

fn list(org: &str, page_size: i32, page_token: &str, status: pb::DraftStatus) -> pb::ListDraftsRequest {
    pb::ListDraftsRequest {
        organization_id: org.to_owned(),
        page_size,
        page_token: page_token.to_owned(),
        status: status.into(),
    }
}

async fn create_drafts(app: &TestApp, org: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(app.complete_draft(org).await.id);
    }
    ids
}

/// Pages through everything with `page_size`, returning the ids in order.
async fn list_all(app: &TestApp, org: &str, page_size: i32, status: pb::DraftStatus) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page =
            app.client.clone().list_drafts(list(org, page_size, &token, status)).await.unwrap().into_inner();
        ids.extend(page.drafts.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn pages_through_in_creation_order() {
    let app = spawn_app().await;
    let org = new_id();
    let created = create_drafts(&app, &org, 7).await;
    create_drafts(&app, &new_id(), 2).await;

    let listed = list_all(&app, &org, 3, pb::DraftStatus::Unspecified).await;

    assert_eq!(listed, created);
}

#[tokio::test]
async fn page_size_zero_means_fifty_and_large_means_five_hundred() {
    let app = spawn_app().await;
    let org = new_id();
    sqlx::query(
        "INSERT INTO drafts (id, organization_id, create_time, update_time)
         SELECT gen_random_uuid(), $1, now() + make_interval(secs => n), now() FROM generate_series(1, 501) n",
    )
    .bind(uuid::Uuid::parse_str(&org).unwrap())
    .execute(&app.db)
    .await
    .unwrap();

    let default = app
        .client
        .clone()
        .list_drafts(list(&org, 0, "", pb::DraftStatus::Unspecified))
        .await
        .unwrap()
        .into_inner();
    let capped = app
        .client
        .clone()
        .list_drafts(list(&org, 10_000, "", pb::DraftStatus::Unspecified))
        .await
        .unwrap()
        .into_inner();
    let rest = app
        .client
        .clone()
        .list_drafts(list(&org, 10_000, &capped.next_page_token, pb::DraftStatus::Unspecified))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(default.drafts.len(), 50);
    assert_eq!(capped.drafts.len(), 500);
    assert_eq!(rest.drafts.len(), 1);
    assert!(rest.next_page_token.is_empty());
}

#[tokio::test]
async fn filters_by_status() {
    let app = spawn_app().await;
    let org = new_id();
    let ids = create_drafts(&app, &org, 3).await;
    app.publish(&org, &ids[0]).await.unwrap();
    let in_a_day = prost_types::Timestamp { seconds: app.now().unix_seconds() + 86_400, nanos: 0 };
    let scheduled = pb::PublishDraftRequest {
        organization_id: org.clone(),
        draft_id: ids[1].clone(),
        publish_at: Some(in_a_day),
    };
    app.client.clone().publish_draft(scheduled).await.unwrap();

    assert_eq!(list_all(&app, &org, 0, pb::DraftStatus::Published).await, [ids[0].clone()]);
    assert_eq!(list_all(&app, &org, 0, pb::DraftStatus::Scheduled).await, [ids[1].clone()]);
    assert_eq!(list_all(&app, &org, 0, pb::DraftStatus::Draft).await, [ids[2].clone()]);
    assert_eq!(list_all(&app, &org, 0, pb::DraftStatus::Unspecified).await, ids);
}

#[tokio::test]
async fn drafts_added_while_paging_never_repeat_or_skip_old_ones() {
    let app = spawn_app().await;
    let org = new_id();
    let old = create_drafts(&app, &org, 6).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_drafts(list(&org, 2, &token, pb::DraftStatus::Unspecified))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.drafts.into_iter().map(|d| d.id));
        create_drafts(&app, &org, 1).await;
        if page.next_page_token.is_empty() || seen.len() > 20 {
            break;
        }
        token = page.next_page_token;
    }

    let seen_old: Vec<_> = seen.iter().filter(|id| old.contains(id)).cloned().collect();
    assert_eq!(seen_old, old);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a draft was listed twice: {seen:?}");
}

#[tokio::test]
async fn bad_page_size_and_page_tokens_are_invalid() {
    let app = spawn_app().await;
    let org = new_id();
    create_drafts(&app, &org, 2).await;
    let token = app
        .client
        .clone()
        .list_drafts(list(&org, 1, "", pb::DraftStatus::Unspecified))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());

    let status =
        app.client.clone().list_drafts(list(&org, -1, "", pb::DraftStatus::Unspecified)).await.unwrap_err();
    assert_invalid_field(&status, "page_size");

    let mut garbled = token.clone();
    garbled.replace_range(5..6, if &token[5..6] == "A" { "B" } else { "A" });
    for (bad_token, org, filter) in [
        ("%%%", org.as_str(), pb::DraftStatus::Unspecified),
        ("AAAA", &org, pb::DraftStatus::Unspecified),
        (&garbled, &org, pb::DraftStatus::Unspecified),
        (&token, &new_id(), pb::DraftStatus::Unspecified),
        (&token, &org, pb::DraftStatus::Draft),
    ] {
        let status = app.client.clone().list_drafts(list(org, 1, bad_token, filter)).await.unwrap_err();
        assert_error(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_invalid_field(&status, "page_token");
    }
}

#[tokio::test]
async fn a_page_token_works_on_another_replica() {
    let app = spawn_app().await;
    let org = new_id();
    let created = create_drafts(&app, &org, 3).await;
    let store = Store::connect_lazy(app.database_url(), &PoolSettings::default()).unwrap();
    let (replica, _shutdown, _server) =
        spawn_server(App::new(store.clone(), Arc::new(SystemClock)), store, ServerSettings::default()).await;

    let first =
        app.client.clone().list_drafts(list(&org, 2, "", pb::DraftStatus::Unspecified)).await.unwrap();
    let token = first.into_inner().next_page_token;
    let rest = connect(replica).await.list_drafts(list(&org, 2, &token, pb::DraftStatus::Unspecified)).await;

    let ids: Vec<_> = rest.unwrap().into_inner().drafts.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, created[2..]);
}
