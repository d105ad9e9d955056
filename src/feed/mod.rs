//! The event-change feed on this replica.
//!
//! The invariant it keeps: **a watcher is woken after every change of its
//! organisation becomes visible** — at once through the local sequencer or
//! PostgreSQL's NOTIFY, and within one poll interval even when every
//! notification is lost. A wake-up only says "read again": what a watcher
//! reads, it reads from the database after its own cursor, so a lost,
//! late or duplicate wake-up can delay a change but never skip or repeat it.
//!
//! - `sequencer`: gives committed changes their positions (the one order),
//!   and releases scheduled PUBLISHED changes at their time.
//! - `hub`: learns of positions given on any replica and wakes the watchers
//!   of the organisations concerned; one listener per replica, not one poll
//!   per watcher.

mod hub;
mod sequencer;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use crate::{
    domain::{Clock, OrganizationId, Position},
    store::Store,
};

/// How often the sequencer and the hub look for work nobody announced: the
/// bound on delivery delay when notifications are lost.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The feed's shared state on this replica; cheap to clone.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    /// Wakes the sequencer: changes were committed on this replica.
    changes_written: Notify,
    /// The highest position known per watched organisation.
    watched: Mutex<HashMap<OrganizationId, watch::Sender<Position>>>,
    /// The highest position known in any organisation, for the relay.
    top: watch::Sender<Position>,
    /// WatchEventChanges streams open on this replica.
    watching: AtomicUsize,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        let inner = Inner {
            changes_written: Notify::new(),
            watched: Mutex::default(),
            top: watch::Sender::new(Position::START),
            watching: AtomicUsize::new(0),
        };
        Self { inner: Arc::new(inner) }
    }

    /// A receiver that changes when any organisation's feed may have grown.
    pub fn subscribe_all(&self) -> watch::Receiver<Position> {
        self.inner.top.subscribe()
    }

    /// Called after a publish commits: its changes are ready to be positioned.
    pub fn changes_written(&self) {
        self.inner.changes_written.notify_one();
    }

    /// Counts one open Watch stream for as long as the guard lives.
    pub fn watching(&self) -> Watching {
        self.inner.watching.fetch_add(1, Ordering::Relaxed);
        Watching(self.clone())
    }

    /// Watch streams open now.
    pub fn watchers(&self) -> usize {
        self.inner.watching.load(Ordering::Relaxed)
    }

    /// A receiver that changes when the organisation's feed may have grown.
    pub fn subscribe(&self, organization_id: OrganizationId) -> watch::Receiver<Position> {
        let mut watched = self.inner.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.entry(organization_id).or_insert_with(|| watch::Sender::new(Position::START)).subscribe()
    }

    /// Wakes the watchers of these organisations; forgets organisations
    /// nobody watches any more.
    fn announce(&self, positions: &[(OrganizationId, Position)]) {
        if let Some(top) = positions.iter().map(|(_, position)| *position).max() {
            self.inner.top.send_if_modified(|known| {
                let grew = top > *known;
                *known = (*known).max(top);
                grew
            });
        }
        let mut watched = self.inner.watched.lock().unwrap_or_else(|e| e.into_inner());
        for (organization_id, position) in positions {
            if let Some(sender) = watched.get(organization_id) {
                sender.send_if_modified(|known| {
                    let grew = *position > *known;
                    *known = (*known).max(*position);
                    grew
                });
            }
        }
        watched.retain(|_, sender| sender.receiver_count() > 0);
    }

    /// Wakes every watcher of this replica: each reads again after its
    /// cursor, so a spurious wake-up costs one read and skips nothing.
    fn wake_all(&self) {
        let watched = self.inner.watched.lock().unwrap_or_else(|e| e.into_inner());
        for sender in watched.values() {
            sender.send_modify(|_| {});
        }
    }

    fn has_watchers(&self) -> bool {
        self.inner.top.receiver_count() > 0
            || !self.inner.watched.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Runs the sequencer and the hub until `stop` turns true.
    pub fn spawn(&self, store: Store, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let sequencer = tokio::spawn(sequencer::run(self.clone(), store.clone(), clock, stop.clone()));
        let hub = tokio::spawn(hub::run(self.clone(), store, stop));
        tokio::spawn(async move {
            let _ = sequencer.await;
            let _ = hub.await;
        })
    }
}

/// One open Watch stream, counted until dropped.
pub struct Watching(Feed);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.inner.watching.fetch_sub(1, Ordering::Relaxed);
    }
}
