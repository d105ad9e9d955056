//! The gRPC handlers: decode the request, run the use case, encode the
//! answer. No SQL and no business rules here.
//!
//! Each use case that must wait runs on its own task, so a caller that
//! cancels (deadline, dropped connection) cannot interrupt a database
//! conversation half-way: a publish either happens whole or not at all, and
//! connections go back to the pool clean. One that answers at once (from
//! the cache) needs no task.
//!
//! Every handler decodes its request through [`admit`], which refuses an
//! organisation outside the caller's scope (see `auth`) before the use case
//! runs, so such a call reads and writes nothing.
//!
//! Handlers record the ids they decode, and PublishDraft its outcome, into
//! the call's span (opened in `server`); the outcome also travels in the
//! response's extensions, for the metrics.

pub mod codec;
pub mod decode;
pub mod encode;
pub mod status;
mod watch;

use std::{future::Future, task::Poll};

use tonic::{Request, Response, Status};
use tracing::{Instrument, Span, field::display};

use self::status::Refusal;
use crate::{
    app::App, auth::Caller, domain::OrganizationId, error::Error, metrics::outcome_name, proto::v1 as pb,
};

/// The `draftpublisher.v1.DraftPublisher` service.
#[derive(Clone)]
pub struct DraftPublisherApi {
    app: App,
    /// Turns true when the server begins to shut down: Watch streams end.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl DraftPublisherApi {
    pub fn new(app: App, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { app, stopping }
    }

    /// Runs `work` to completion, even if the call is dropped: polled once
    /// here, and if it must wait (for the database), handed to a task of
    /// its own before the call can be dropped.
    ///
    /// The use case's future is large (the store's statements and their
    /// retries, kilobytes): boxed once, it is moved as a pointer from then
    /// on, rather than copied into the task, out of it and into the
    /// answer. An answer ready at once (a publication from the cache)
    /// costs no task at all.
    async fn run<T, F, Fut>(&self, work: F) -> Result<Response<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(App) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let mut work = Box::pin(work(self.app.clone()));
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        let result = match first {
            Poll::Ready(result) => result,
            // No await between the poll and the spawn: the call cannot be
            // dropped with the work half done and not yet on its task.
            Poll::Pending => match tokio::spawn(work.instrument(Span::current())).await {
                Ok(result) => result,
                Err(join_error) => Err(Error::Internal(join_error.into())),
            },
        };
        result.map(Response::new).map_err(Status::from)
    }
}

/// Decodes the request's message and admits the call: its organisation must
/// be in the scope of the caller that authentication identified. A call
/// without an identified caller is refused too, so that a service wired
/// without the authenticator fails closed.
fn admit<M, D>(
    request: Request<M>,
    decode: impl FnOnce(M) -> Result<D, Error>,
    organization: impl FnOnce(&D) -> OrganizationId,
) -> Result<D, Status> {
    let caller = request.extensions().get::<Caller>().cloned();
    let decoded = decode(request.into_inner())?;
    let organization_id = organization(&decoded);
    record("organization_id", organization_id);
    match caller {
        Some(caller) => caller.admit(organization_id)?,
        None => return Err(Refusal::OrganizationNotAllowed { organization_id }.into()),
    }
    Ok(decoded)
}

/// Records one of the call's ids into its span.
fn record(field: &'static str, id: impl std::fmt::Display) {
    Span::current().record(field, display(id));
}

#[tonic::async_trait]
impl pb::draft_publisher_server::DraftPublisher for DraftPublisherApi {
    type WatchEventChangesStream = watch::ChangeStream;

    async fn create_draft(
        &self,
        request: Request<pb::CreateDraftRequest>,
    ) -> Result<Response<pb::CreateDraftResponse>, Status> {
        let new = admit(request, decode::create_draft, |new| new.organization_id)?;
        self.run(|app| async move {
            let draft = app.create_draft(new).await?;
            record("draft_id", draft.id);
            Ok(pb::CreateDraftResponse { draft: Some(encode::draft(draft, app.now())) })
        })
        .await
    }

    async fn get_draft(
        &self,
        request: Request<pb::GetDraftRequest>,
    ) -> Result<Response<pb::GetDraftResponse>, Status> {
        let (organization_id, draft_id) = admit(request, decode::get_draft, |(org, _)| *org)?;
        record("draft_id", draft_id);
        self.run(move |app| async move {
            let draft = app.get_draft(organization_id, draft_id).await?;
            Ok(pb::GetDraftResponse { draft: Some(encode::draft(draft, app.now())) })
        })
        .await
    }

    async fn update_draft(
        &self,
        request: Request<pb::UpdateDraftRequest>,
    ) -> Result<Response<pb::UpdateDraftResponse>, Status> {
        let update = admit(request, decode::update_draft, |update| update.organization_id)?;
        record("draft_id", update.draft_id);
        self.run(|app| async move {
            let draft = app
                .update_draft(update.organization_id, update.draft_id, update.expected_version, update.patch)
                .await?;
            Ok(pb::UpdateDraftResponse { draft: Some(encode::draft(draft, app.now())) })
        })
        .await
    }

    async fn list_drafts(
        &self,
        request: Request<pb::ListDraftsRequest>,
    ) -> Result<Response<pb::ListDraftsResponse>, Status> {
        let listing = admit(request, decode::list_drafts, |listing| listing.organization_id)?;
        self.run(|app| async move {
            let page = app
                .list_drafts(listing.organization_id, listing.filter, listing.page_token, listing.page_size)
                .await?;
            let now = app.now();
            Ok(pb::ListDraftsResponse {
                drafts: page.drafts.into_iter().map(|d| encode::draft(d, now)).collect(),
                next_page_token: page.next_page_token.map(|t| t.encode()).unwrap_or_default(),
            })
        })
        .await
    }

    async fn publish_draft(
        &self,
        request: Request<pb::PublishDraftRequest>,
    ) -> Result<Response<pb::PublishDraftResponse>, Status> {
        let (organization_id, draft_id, publish_at) =
            admit(request, decode::publish_draft, |(org, _, _)| *org)?;
        record("draft_id", draft_id);
        let answer = self
            .run(move |app| async move {
                let publication = app.publish_draft(organization_id, draft_id, publish_at).await?;
                record("event_id", publication.event.id);
                Span::current().record("outcome", outcome_name(publication.outcome));
                let (outcome, written) = (publication.outcome, publication.changes_written());
                let now = app.now();
                let answer = pb::PublishDraftResponse {
                    event_id: publication.event.id.to_string(),
                    already_published: publication.already_published(),
                    event: Some(encode::event(publication.event, now)),
                    draft: Some(encode::draft(publication.draft, now)),
                };
                Ok((answer, outcome, written))
            })
            .await?;
        let (answer, outcome, written) = answer.into_inner();
        let mut answer = Response::new(answer);
        answer.extensions_mut().insert(outcome);
        answer.extensions_mut().insert(written);
        Ok(answer)
    }

    async fn get_event(
        &self,
        request: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::GetEventResponse>, Status> {
        let (organization_id, event_id) = admit(request, decode::get_event, |(org, _)| *org)?;
        record("event_id", event_id);
        self.run(move |app| async move {
            let event = app.get_event(organization_id, event_id).await?;
            Ok(pb::GetEventResponse { event: Some(encode::event(event, app.now())) })
        })
        .await
    }

    async fn list_event_changes(
        &self,
        request: Request<pb::ListEventChangesRequest>,
    ) -> Result<Response<pb::ListEventChangesResponse>, Status> {
        let mut after_cursor = String::new();
        let decode = |request: pb::ListEventChangesRequest| {
            after_cursor.clone_from(&request.after_cursor);
            decode::list_event_changes(request)
        };
        let feed = admit(request, decode, |feed| feed.cursor.organization_id)?;
        self.run(move |app| async move {
            let changes = app.list_event_changes(feed.cursor, feed.page_size.get()).await?;
            let next_cursor = changes.last().map_or(after_cursor, |last| last.cursor().encode());
            Ok(pb::ListEventChangesResponse {
                changes: changes.into_iter().map(encode::event_change).collect(),
                next_cursor,
            })
        })
        .await
    }

    async fn watch_event_changes(
        &self,
        request: Request<pb::WatchEventChangesRequest>,
    ) -> Result<Response<Self::WatchEventChangesStream>, Status> {
        let feed = admit(request, decode::watch_event_changes, |feed| feed.cursor.organization_id)?;
        Ok(Response::new(watch::spawn(self.app.clone(), feed.cursor, self.stopping.clone())))
    }
}
