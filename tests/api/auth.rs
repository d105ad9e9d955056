//! Bearer-token authentication: the service and reflection require a token
//! when tokens are configured; health stays open for probes.

use draft_publisher::{
    proto::v1 as pb,
    server::{BearerTokens, ServerSettings},
};
use tokio_stream::StreamExt;
use tonic::{
    Code, Request, Status, metadata::MetadataValue, service::interceptor::InterceptedService,
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::helpers::*;

const TOKEN: &str = "s3cr3t-token-for-tests";
const OTHER_TOKEN: &str = "another-accepted-token";

type Authorization = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send + Sync>;

/// A client that sends `authorization: <value>` with every call.
fn with_authorization(channel: Channel, value: &str) -> InterceptedService<Channel, Authorization> {
    let value: MetadataValue<_> = value.parse().unwrap();
    let add: Authorization = Box::new(move |mut request: Request<()>| {
        request.metadata_mut().insert("authorization", value.clone());
        Ok(request)
    });
    InterceptedService::new(channel, add)
}

async fn spawn_app_with_tokens() -> TestApp {
    let auth = BearerTokens::new([TOKEN, OTHER_TOKEN]);
    spawn_app_with(ServerSettings { auth, ..ServerSettings::default() }).await
}

async fn create_draft_with(
    app: &TestApp,
    authorization: Option<&str>,
    org: &str,
) -> Result<pb::Draft, Status> {
    let request = complete_draft_request(org);
    let channel = channel(app.addr).await;
    let answer = match authorization {
        Some(value) => {
            pb::draft_publisher_client::DraftPublisherClient::new(with_authorization(channel, value))
                .create_draft(request)
                .await
        }
        None => pb::draft_publisher_client::DraftPublisherClient::new(channel).create_draft(request).await,
    };
    answer.map(|r| r.into_inner().draft.unwrap())
}

#[tokio::test]
async fn without_tokens_configured_calls_need_no_credentials() {
    let app = spawn_app().await;

    let draft = create_draft_with(&app, None, &new_id()).await.expect("open service");

    assert_eq!(draft.version, 1);
}

#[tokio::test]
async fn a_call_without_credentials_is_unauthenticated_and_changes_nothing() {
    let app = spawn_app_with_tokens().await;

    let status = create_draft_with(&app, None, &new_id()).await.unwrap_err();

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
        let status = create_draft_with(&app, Some(authorization), &new_id()).await.unwrap_err();

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
        create_draft_with(&app, Some(authorization), &org).await.expect("authenticated call");
    }

    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 3);
}

#[tokio::test]
async fn health_stays_open_without_credentials() {
    let app = spawn_app_with_tokens().await;
    let mut health = HealthClient::new(channel(app.addr).await);

    for service in ["", "draftpublisher.v1.DraftPublisher"] {
        let answer = health.check(HealthCheckRequest { service: service.to_owned() }).await;

        let status = answer.expect("health answers without a token").into_inner().status();
        assert!(matches!(status, ServingStatus::Serving | ServingStatus::NotServing), "{status:?}");
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

    let status = ServerReflectionClient::new(channel(app.addr).await)
        .server_reflection_info(list_services())
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "MISSING_CREDENTIALS");

    let authorized = with_authorization(channel(app.addr).await, &format!("Bearer {TOKEN}"));
    let mut answers = ServerReflectionClient::new(authorized)
        .server_reflection_info(list_services())
        .await
        .unwrap()
        .into_inner();
    assert!(answers.next().await.expect("an answer").is_ok());
}
