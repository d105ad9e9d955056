//! Publishes in flight on this replica, by draft: a PublishDraft of a draft
//! whose publish is already running here waits for that one's answer instead
//! of queueing behind it on the draft's row lock in PostgreSQL (a double
//! click, a retry storm, callers racing on one replica).
//!
//! Only an optimisation: exactly-once is kept by the database's
//! one-event-per-draft constraint, across replicas as on this one. A waiter
//! takes only a *published* answer; when the call it waited for fails or is
//! cancelled, it publishes by itself as if it had come alone, so it can
//! neither inherit another call's error nor answer for a draft that is not
//! published.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{Mutex, MutexGuard},
};

use tokio::sync::watch;

use crate::domain::{Draft, DraftId, Event, OrganizationId};

type Key = (OrganizationId, DraftId);
type Answer = Option<(Draft, Event)>;

#[derive(Default)]
pub struct PublishesInFlight {
    running: Mutex<HashMap<Key, watch::Sender<Answer>>>,
}

/// What a publish call does, given the publishes in flight.
pub enum Turn<'a> {
    /// None of this draft runs here: this call publishes and, through the
    /// guard, answers the calls that wait for it.
    Lead(Leading<'a>),
    /// One runs: wait for its answer.
    Wait(Waiting),
}

impl PublishesInFlight {
    /// Joins the publishes of the draft in flight, or leads one.
    pub fn join(&self, organization_id: OrganizationId, draft_id: DraftId) -> Turn<'_> {
        let key = (organization_id, draft_id);
        match self.running().entry(key) {
            Entry::Occupied(running) => Turn::Wait(Waiting(running.get().subscribe())),
            Entry::Vacant(free) => {
                free.insert(watch::Sender::new(None));
                Turn::Lead(Leading { in_flight: self, key })
            }
        }
    }

    /// Calls waiting now for a publish in flight.
    pub fn waiting(&self) -> usize {
        self.running().values().map(watch::Sender::receiver_count).sum()
    }

    fn running(&self) -> MutexGuard<'_, HashMap<Key, watch::Sender<Answer>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The publish in flight; dropping it (answered, failed or cancelled) ends it.
pub struct Leading<'a> {
    in_flight: &'a PublishesInFlight,
    key: Key,
}

impl Leading<'_> {
    /// Answers every waiting call with the draft as published and its event.
    pub fn published(self, draft: &Draft, event: &Event) {
        if let Some(running) = self.in_flight.running().get(&self.key) {
            running.send_replace(Some((draft.clone(), event.clone())));
        }
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.in_flight.running().remove(&self.key);
    }
}

/// A call waiting for a publish in flight.
pub struct Waiting(watch::Receiver<Answer>);

impl Waiting {
    /// The published draft and its event, or `None` when the publish waited
    /// for ended without one (it failed or was cancelled).
    pub async fn answer(mut self) -> Answer {
        self.0.wait_for(Option::is_some).await.ok().and_then(|answer| answer.clone())
    }
}
