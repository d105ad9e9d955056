//! WatchEventChanges: a task per stream that reads the organisation's feed
//! page by page after the client's cursor and waits for a wake-up when it is
//! caught up.
//!
//! Memory per watcher is bounded: the task reads a page only when the
//! channel to the client has room, so a slow reader slows its own task (and
//! HTTP/2 flow control slows the channel) instead of buffering its backlog.

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{Instrument, Span};

use super::{encode, status::Refusal};
use crate::{app::App, domain::FeedCursor, proto::v1 as pb, shutdown::stopped};

/// Changes read from the database per query.
const PAGE: u16 = 100;
/// Messages encoded ahead of the client.
const BUFFERED: usize = 16;

pub type ChangeStream = ReceiverStream<Result<pb::WatchEventChangesResponse, Status>>;

/// Starts the stream's task; the stream ends when the client goes away, the
/// server stops (UNAVAILABLE) or the database fails (UNAVAILABLE).
pub fn spawn(app: App, after: FeedCursor, stopping: watch::Receiver<bool>) -> ChangeStream {
    let (sender, receiver) = mpsc::channel(BUFFERED);
    tokio::spawn(run(app, after, sender, stopping).instrument(Span::current()));
    ReceiverStream::new(receiver)
}

async fn run(
    app: App,
    mut after: FeedCursor,
    sender: mpsc::Sender<Result<pb::WatchEventChangesResponse, Status>>,
    mut stopping: watch::Receiver<bool>,
) {
    let _watching = app.feed().watching();
    let mut wake = app.feed().subscribe(after.organization_id);
    loop {
        let next = tokio::select! {
            next = app.next_event_changes(after, PAGE, &mut wake) => next,
            () = stopped(&mut stopping) => {
                let _ = sender.send(Err(Refusal::ShuttingDown.into())).await;
                return;
            }
            () = sender.closed() => return,
        };
        let changes = match next {
            Ok(changes) => changes,
            Err(error) => {
                let _ = sender.send(Err(error.into())).await;
                return;
            }
        };
        for change in changes {
            after = change.cursor();
            let message = pb::WatchEventChangesResponse { change: Some(encode::event_change(change)) };
            if sender.send(Ok(message)).await.is_err() {
                return;
            }
        }
    }
}
