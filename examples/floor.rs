//! The gRPC floor: the same generated `DraftPublisher` service answering
//! from memory, with no database, no layers and no logging. What the load
//! generator measures against it is what gRPC, HTTP/2, tokio and the load
//! generator itself cost on this machine; `scripts/bench.sh` reports every
//! service scenario as a ratio to it (see BENCHMARKS.md).
//!
//!     cargo run --release --example floor -- --listen-addr 127.0.0.1:50152
//!
//! CreateDraft stores the draft; PublishDraft creates its event once and
//! answers every later call with the same one, the same answers (field for
//! field) the service gives, so the messages on the wire are as large. Other
//! calls are UNIMPLEMENTED.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use clap::Parser;
use draft_publisher::proto::v1::{
    self as pb,
    draft_publisher_server::{DraftPublisher, DraftPublisherServer},
};
use prost_types::Timestamp;
use tonic::{Request, Response, Status, transport::Server};

#[derive(Debug, Parser)]
#[command(about = "DraftPublisher answering from memory: the benchmark's gRPC floor")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:50152")]
    listen_addr: SocketAddr,
}

/// Drafts by (organisation, draft id), with their events once published.
type Drafts = HashMap<(String, String), (pb::Draft, Option<pb::Event>)>;

#[derive(Default, Clone)]
struct Floor {
    drafts: Arc<Mutex<Drafts>>,
}

fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the gRPC floor answers CreateDraft and PublishDraft only"))
}

#[tonic::async_trait]
impl DraftPublisher for Floor {
    type WatchEventChangesStream = tokio_stream::Empty<Result<pb::WatchEventChangesResponse, Status>>;

    async fn create_draft(
        &self,
        request: Request<pb::CreateDraftRequest>,
    ) -> Result<Response<pb::CreateDraftResponse>, Status> {
        let request = request.into_inner();
        let time = now();
        let draft = pb::Draft {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: request.organization_id,
            title: request.title,
            description: request.description,
            location: request.location,
            starts_at: request.starts_at,
            ends_at: request.ends_at,
            status: pb::DraftStatus::Draft.into(),
            event_id: String::new(),
            version: 1,
            create_time: Some(time),
            update_time: Some(time),
            publish_time: None,
        };
        let key = (draft.organization_id.clone(), draft.id.clone());
        self.drafts.lock().expect("not poisoned").insert(key, (draft.clone(), None));
        Ok(Response::new(pb::CreateDraftResponse { draft: Some(draft) }))
    }

    async fn publish_draft(
        &self,
        request: Request<pb::PublishDraftRequest>,
    ) -> Result<Response<pb::PublishDraftResponse>, Status> {
        let request = request.into_inner();
        let mut drafts = self.drafts.lock().expect("not poisoned");
        let Some((draft, event)) = drafts.get_mut(&(request.organization_id, request.draft_id)) else {
            return Err(Status::not_found("no such draft"));
        };
        let already_published = event.is_some();
        let event = event.get_or_insert_with(|| {
            let time = now();
            draft.status = pb::DraftStatus::Published.into();
            draft.event_id = uuid::Uuid::now_v7().to_string();
            draft.version += 1;
            draft.update_time = Some(time);
            draft.publish_time = Some(time);
            pb::Event {
                id: draft.event_id.clone(),
                organization_id: draft.organization_id.clone(),
                draft_id: draft.id.clone(),
                title: draft.title.clone(),
                description: draft.description.clone(),
                location: draft.location.clone(),
                starts_at: draft.starts_at,
                ends_at: draft.ends_at,
                status: pb::EventStatus::Published.into(),
                publish_time: Some(time),
                create_time: Some(time),
            }
        });
        Ok(Response::new(pb::PublishDraftResponse {
            event_id: event.id.clone(),
            already_published,
            event: Some(event.clone()),
            draft: Some(draft.clone()),
        }))
    }

    async fn get_draft(
        &self,
        _: Request<pb::GetDraftRequest>,
    ) -> Result<Response<pb::GetDraftResponse>, Status> {
        unimplemented()
    }

    async fn update_draft(
        &self,
        _: Request<pb::UpdateDraftRequest>,
    ) -> Result<Response<pb::UpdateDraftResponse>, Status> {
        unimplemented()
    }

    async fn list_drafts(
        &self,
        _: Request<pb::ListDraftsRequest>,
    ) -> Result<Response<pb::ListDraftsResponse>, Status> {
        unimplemented()
    }

    async fn get_event(
        &self,
        _: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::GetEventResponse>, Status> {
        unimplemented()
    }

    async fn list_event_changes(
        &self,
        _: Request<pb::ListEventChangesRequest>,
    ) -> Result<Response<pb::ListEventChangesResponse>, Status> {
        unimplemented()
    }

    async fn watch_event_changes(
        &self,
        _: Request<pb::WatchEventChangesRequest>,
    ) -> Result<Response<Self::WatchEventChangesStream>, Status> {
        unimplemented()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // TCP_NODELAY as in the service (src/server): without it every small
    // answer waits for the client's delayed ACK. Runs until killed: it
    // holds nothing worth a graceful shutdown.
    Server::builder()
        .tcp_nodelay(true)
        .add_service(DraftPublisherServer::new(Floor::default()))
        .serve(args.listen_addr)
        .await?;
    Ok(())
}
