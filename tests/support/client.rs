//! The typed client the tests speak through: one method per RPC returning
//! `Result<pb::…Response, Status>`, plus the few calls tests make so often
//! that they have a name (`complete_draft`, `publish`). Cheap to clone; a
//! clone shares the connection.

use std::net::SocketAddr;

use draft_publisher::proto::v1::{self as pb, draft_publisher_client::DraftPublisherClient};
use tonic::{
    IntoRequest, Request, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::support::{net, requests::*};

/// Answers as large as the tests make them (a full page of long drafts).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Adds `authorization` metadata to every call, when set; usable with any
/// generated client (`InterceptedService::new(channel, authorization)`).
#[derive(Clone, Default)]
pub struct Authorization(Option<AsciiMetadataValue>);

impl Authorization {
    /// `authorization: <value>`, as given.
    pub fn header(value: &str) -> Self {
        Self(Some(MetadataValue::try_from(value).expect("ASCII metadata")))
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Self {
        Self::header(&format!("Bearer {token}"))
    }
}

impl Interceptor for Authorization {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = DraftPublisherClient<InterceptedService<Channel, Authorization>>;

#[derive(Clone)]
pub struct TestClient {
    client: Client,
}

/// The RPC methods, one line each: a handle on the shared connection, the
/// call, and the answer's message.
macro_rules! rpcs {
    ($($method:ident($request:ty) -> $response:ty;)*) => {$(
        pub async fn $method(&self, request: impl IntoRequest<$request>) -> Result<$response, Status> {
            self.client.clone().$method(request).await.map(tonic::Response::into_inner)
        }
    )*};
}

impl TestClient {
    pub fn new(channel: Channel) -> Self {
        Self::with(channel, Authorization::default())
    }

    /// A client sending `authorization: <value>` with every call.
    pub fn with_authorization(channel: Channel, value: &str) -> Self {
        Self::with(channel, Authorization::header(value))
    }

    fn with(channel: Channel, authorization: Authorization) -> Self {
        let client = DraftPublisherClient::with_interceptor(channel, authorization)
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        Self { client }
    }

    /// A client on a connection of its own, established now.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::new(net::channel(addr).await)
    }

    rpcs! {
        create_draft(pb::CreateDraftRequest) -> pb::CreateDraftResponse;
        get_draft(pb::GetDraftRequest) -> pb::GetDraftResponse;
        update_draft(pb::UpdateDraftRequest) -> pb::UpdateDraftResponse;
        list_drafts(pb::ListDraftsRequest) -> pb::ListDraftsResponse;
        publish_draft(pb::PublishDraftRequest) -> pb::PublishDraftResponse;
        get_event(pb::GetEventRequest) -> pb::GetEventResponse;
        list_event_changes(pb::ListEventChangesRequest) -> pb::ListEventChangesResponse;
    }

    /// WatchEventChanges: the open stream, or the status refusing it.
    pub async fn watch_event_changes(
        &self,
        organization_id: &str,
        after_cursor: &str,
    ) -> Result<tonic::Streaming<pb::WatchEventChangesResponse>, Status> {
        let request = pb::WatchEventChangesRequest {
            organization_id: organization_id.to_owned(),
            after_cursor: after_cursor.to_owned(),
        };
        self.client.clone().watch_event_changes(request).await.map(tonic::Response::into_inner)
    }

    /// CreateDraft that must succeed: the new (or, for a repeated
    /// `request_id`, the existing) draft.
    pub async fn create(&self, request: impl IntoRequest<pb::CreateDraftRequest>) -> pb::Draft {
        let answer = self.create_draft(request).await;
        answer.unwrap_or_else(|s| panic!("CreateDraft failed: {s:?}")).draft.expect("a draft")
    }

    /// Creates a draft that can be published.
    pub async fn complete_draft(&self, organization_id: &str) -> pb::Draft {
        self.create(complete_draft_request(organization_id)).await
    }

    /// UpdateDraft that must succeed: the updated draft.
    pub async fn update(&self, request: impl IntoRequest<pb::UpdateDraftRequest>) -> pb::Draft {
        let answer = self.update_draft(request).await;
        answer.unwrap_or_else(|s| panic!("UpdateDraft failed: {s:?}")).draft.expect("a draft")
    }

    /// GetDraft that must succeed: the stored draft.
    pub async fn fetch_draft(&self, organization_id: &str, draft_id: &str) -> pb::Draft {
        let answer = self.get_draft(get_draft_request(organization_id, draft_id)).await;
        answer.unwrap_or_else(|s| panic!("GetDraft {draft_id} failed: {s:?}")).draft.expect("a draft")
    }

    /// GetEvent that must succeed: the stored event.
    pub async fn fetch_event(&self, organization_id: &str, event_id: &str) -> pb::Event {
        let answer = self.get_event(get_event_request(organization_id, event_id)).await;
        answer.unwrap_or_else(|s| panic!("GetEvent {event_id} failed: {s:?}")).event.expect("an event")
    }

    /// PublishDraft now.
    pub async fn publish(
        &self,
        organization_id: &str,
        draft_id: &str,
    ) -> Result<pb::PublishDraftResponse, Status> {
        self.publish_draft(publish_request(organization_id, draft_id)).await
    }
}
