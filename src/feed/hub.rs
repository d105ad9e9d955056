//! The hub: one LISTEN connection per replica, plus a poll as the fallback
//! that makes it correct, turning "positions were given" into wake-ups for
//! the watchers of the organisations concerned.

use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Feed, POLL_INTERVAL};
use crate::{domain::Position, shutdown::stopped, store::Store};

pub(super) async fn run(feed: Feed, store: Store, mut stop: watch::Receiver<bool>) {
    let notified = std::sync::Arc::new(Notify::new());
    // Through a transaction pooler LISTEN would end with its transaction:
    // there the poll alone wakes watchers, within POLL_INTERVAL.
    let listener = store.can_listen().then(|| tokio::spawn(listen(store.clone(), notified.clone())));
    let mut seen = Position::START;
    let mut known = false;
    loop {
        tokio::select! {
            () = notified.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = stopped(&mut stop) => break,
        }
        if !known {
            // Start from the top, and wake every watcher once: one that read
            // the database before another replica positioned a change at or
            // below this top would otherwise wait for the next change.
            match store.top_position().await {
                Ok(top) => (seen, known) = (top, true),
                Err(_) => continue,
            }
            feed.wake_all();
        }
        if !feed.has_watchers() {
            continue;
        }
        match store.positions_since(seen).await {
            Ok(positions) => {
                if let Some(top) = positions.iter().map(|(_, position)| *position).max() {
                    seen = seen.max(top);
                }
                feed.announce(&positions);
            }
            Err(error) => tracing::debug!(%error, "feed hub: cannot read new positions"),
        }
    }
    if let Some(listener) = listener {
        listener.abort();
    }
}

/// Forwards every notification on the changes channel, and every reconnect
/// (after which some may have been missed), to `notified`.
async fn listen(store: Store, notified: std::sync::Arc<Notify>) {
    loop {
        match store.listen_for_changes().await {
            Ok(mut listener) => loop {
                match listener.wait().await {
                    Ok(_) => notified.notify_one(),
                    Err(error) => {
                        tracing::debug!(%error, "feed hub: listener lost its connection");
                        notified.notify_one();
                        break;
                    }
                }
            },
            Err(error) => tracing::debug!(%error, "feed hub: cannot listen for changes"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
