//! Bearer-token authentication: the service and reflection require a token
//! when tokens are configured; health stays open for probes.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::{Code, service::interceptor::InterceptedService};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::support::{
    client::Authorization,
    health::{self, NAMES, SERVICE, ServingStatus},
    *,
};

const TOKEN: &str = "s3cr3t-token-for-tests";
const OTHER_TOKEN: &str = "another-accepted-token";

async fn spawn_app_with_tokens() -> TestApp {
    TestApp::builder().auth([TOKEN, OTHER_TOKEN]).spawn().await
}

#[tokio::test]
async fn without_tokens_configured_calls_need_no_credentials() {
    let app = TestApp::spawn().await;

    let draft = app.create_draft(complete_draft_request(&new_id())).await.expect("open service");

    assert_eq!(draft.draft.unwrap().version, 1);
}

#[tokio::test]
async fn a_call_without_credentials_is_unauthenticated_and_changes_nothing() {
    let app = spawn_app_with_tokens().await;

    let status = app.create_draft(complete_draft_request(&new_id())).await.unwrap_err();

    assert_error(&status, Code::Unauthenticated, "MISSING_CREDENTIALS");
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 0);
}

#[tokio::test]
async fn wrong_credentials_are_unauthenticated() {
    let app = spawn_app_with_tokens().await;
    let cases = [
        ("Bearer not-the-token", "wrong token"),
        ("Bearer s3cr3t-token-for-test", "a prefix of the token"),
        ("Bearer s3cr3t-token-for-testss", "the token and more"),
        ("Bearer S3CR3T-TOKEN-FOR-TESTS", "the token in other letter case"),
        ("Bearer ", "empty token"),
        ("Basic czNjcjN0LXRva2VuLWZvci10ZXN0cw==", "another scheme"),
        ("s3cr3t-token-for-tests", "no scheme"),
    ];

    for (authorization, case) in cases {
        let client = app.client_with_authorization(authorization);
        let status = client.create_draft(complete_draft_request(&new_id())).await.unwrap_err();

        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
        assert!(!status.message().contains(TOKEN), "{case}: the message repeats a token");
    }
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 0);
}

#[tokio::test]
async fn every_configured_token_is_accepted() {
    let app = spawn_app_with_tokens().await;
    let org = new_id();

    let accepted = [format!("Bearer {TOKEN}"), format!("Bearer {OTHER_TOKEN}"), format!("bearer {TOKEN}")];

    for authorization in &accepted {
        app.client_with_authorization(authorization).complete_draft(&org).await;
    }

    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 3);
}

#[tokio::test]
async fn health_stays_open_without_credentials() {
    let app = spawn_app_with_tokens().await;
    // Watch, without a token, streams the first probe's SERVING.
    app.watch_health(SERVICE).await.until(ServingStatus::Serving, Duration::from_secs(10)).await;

    for service in NAMES {
        let answer = health::check(app.channel().await, service).await;

        let status = answer.expect("health answers without a token");
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
}

fn list_services() -> impl tokio_stream::Stream<Item = ServerReflectionRequest> {
    tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }])
}

#[tokio::test]
async fn reflection_requires_a_token() {
    let app = spawn_app_with_tokens().await;

    let status =
        ServerReflectionClient::new(app.channel().await).server_reflection_info(list_services()).await;
    assert_error(&status.unwrap_err(), Code::Unauthenticated, "MISSING_CREDENTIALS");

    let authorized = InterceptedService::new(app.channel().await, Authorization::bearer(TOKEN));
    let mut answers = ServerReflectionClient::new(authorized)
        .server_reflection_info(list_services())
        .await
        .unwrap()
        .into_inner();
    assert!(answers.next().await.expect("an answer").is_ok());
}
