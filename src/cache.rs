//! A bounded in-process cache of published drafts and their events, so that
//! a repeated PublishDraft (a double click, a retry loop, a replay) and
//! GetEvent cost PostgreSQL nothing.
//!
//! Why it can never answer wrongly:
//! - only publications are stored, and a published draft and its event never
//!   change again: UpdateDraft refuses published drafts (its statement
//!   requires `event_id IS NULL`), nothing deletes, and the status is derived
//!   from `publish_time` and the clock at the moment of the answer;
//! - an unpublished draft is never stored, so a miss always goes to the
//!   database, which decides;
//! - every key holds the organisation, and lookups use the caller's: another
//!   organisation's draft or event is a miss, then NOT_FOUND from the database.
//!
//! Memory is capped by an estimate of the entries' size; the oldest entries
//! go first (publications are looked up again soon after, or rarely at all).
//! A publication's event is held once, shared by its draft's key and its
//! event's key.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::domain::{Draft, DraftId, Event, EventId, OrganizationId};

/// Bytes an entry costs beyond its text: ids, times, map and queue slots.
const ENTRY_OVERHEAD: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Draft(OrganizationId, DraftId),
    Event(OrganizationId, EventId),
}

/// Cloned out of the lock as a pointer; the caller copies what it answers
/// with after the lock is released.
#[derive(Clone)]
enum Entry {
    Publication(Arc<(Draft, Event)>),
    Event(Arc<Event>),
}

impl Entry {
    /// A publication held under both its keys is charged under each: the
    /// estimate stays above what the entries hold.
    fn cost(&self) -> usize {
        let event = |e: &Event| e.title.len() + e.description.len() + e.location.len();
        ENTRY_OVERHEAD
            + match self {
                Self::Publication(publication) => {
                    let (draft, event_) = &**publication;
                    let content = &draft.content;
                    content.title.as_str().len()
                        + content.description.as_str().len()
                        + content.location.as_str().len()
                        + event(event_)
                }
                Self::Event(e) => event(e),
            }
    }
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    /// Keys in insertion order, for eviction.
    order: VecDeque<Key>,
    bytes: usize,
}

/// Hits and misses so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: usize,
}

pub struct PublishedCache {
    budget: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PublishedCache {
    /// A cache holding at most about `budget` bytes; 0 turns it off.
    pub fn new(budget: usize) -> Self {
        Self { budget, entries: Mutex::default(), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    fn lookup(&self, key: Key) -> Option<Entry> {
        if self.budget == 0 {
            return None;
        }
        let found = self.entries.lock().unwrap_or_else(|e| e.into_inner()).map.get(&key).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn insert(&self, key: Key, entry: Entry) {
        let cost = entry.cost();
        if cost > self.budget {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.map.contains_key(&key) {
            return;
        }
        while entries.bytes + cost > self.budget {
            let Some(oldest) = entries.order.pop_front() else { break };
            if let Some(evicted) = entries.map.remove(&oldest) {
                entries.bytes -= evicted.cost();
            }
        }
        entries.bytes += cost;
        entries.order.push_back(key);
        entries.map.insert(key, entry);
    }

    /// The publication of the organisation's draft, if cached.
    pub fn publication(&self, organization_id: OrganizationId, draft_id: DraftId) -> Option<(Draft, Event)> {
        match self.lookup(Key::Draft(organization_id, draft_id))? {
            Entry::Publication(publication) => Some((*publication).clone()),
            Entry::Event(_) => None,
        }
    }

    /// The organisation's event, if cached.
    pub fn event(&self, organization_id: OrganizationId, event_id: EventId) -> Option<Event> {
        match self.lookup(Key::Event(organization_id, event_id))? {
            Entry::Event(event) => Some((*event).clone()),
            Entry::Publication(publication) => Some(publication.1.clone()),
        }
    }

    /// Remembers a published draft and its event, under both keys.
    pub fn remember_publication(&self, draft: &Draft, event: &Event) {
        if self.budget == 0 || draft.event_id != Some(event.id) {
            return;
        }
        let publication = Arc::new((draft.clone(), event.clone()));
        self.insert(Key::Draft(draft.organization_id, draft.id), Entry::Publication(publication.clone()));
        self.insert(Key::Event(event.organization_id, event.id), Entry::Publication(publication));
    }

    /// Remembers an event.
    pub fn remember_event(&self, event: &Event) {
        if self.budget == 0 {
            return;
        }
        self.insert(Key::Event(event.organization_id, event.id), Entry::Event(Arc::new(event.clone())));
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.entries.lock().unwrap_or_else(|e| e.into_inner()).bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DraftContent, Timestamp};

    fn publication(organization_id: OrganizationId) -> (Draft, Event) {
        let now = Timestamp::from_unix("t", 1_700_000_000, 0).unwrap();
        let event_id = EventId::generate();
        let draft = Draft {
            id: DraftId::generate(),
            organization_id,
            content: DraftContent::default(),
            event_id: Some(event_id),
            version: 2,
            create_time: now,
            update_time: now,
            publish_time: Some(now),
        };
        let event = Event {
            id: event_id,
            organization_id,
            draft_id: draft.id,
            title: "t".repeat(100),
            description: String::new(),
            location: String::new(),
            starts_at: now,
            ends_at: now,
            publish_time: now,
            create_time: now,
        };
        (draft, event)
    }

    #[test]
    fn answers_only_the_organisation_it_was_given() {
        let cache = PublishedCache::new(1 << 20);
        let org = OrganizationId::from_uuid(uuid::Uuid::now_v7());
        let (draft, event) = publication(org);
        cache.remember_publication(&draft, &event);

        assert_eq!(cache.publication(org, draft.id), Some((draft.clone(), event.clone())));
        assert_eq!(cache.event(org, event.id), Some(event.clone()));
        let other = OrganizationId::from_uuid(uuid::Uuid::now_v7());
        assert_eq!(cache.publication(other, draft.id), None);
        assert_eq!(cache.event(other, event.id), None);
        assert_eq!(cache.stats().hits, 2);
        assert_eq!(cache.stats().misses, 2);
    }

    #[test]
    fn never_stores_an_unpublished_draft() {
        let cache = PublishedCache::new(1 << 20);
        let org = OrganizationId::from_uuid(uuid::Uuid::now_v7());
        let (mut draft, event) = publication(org);
        draft.event_id = None;
        cache.remember_publication(&draft, &event);

        assert_eq!(cache.publication(org, draft.id), None);
    }

    #[test]
    fn stays_within_its_budget_evicting_the_oldest() {
        let budget = 64 * 1024;
        let cache = PublishedCache::new(budget);
        let org = OrganizationId::from_uuid(uuid::Uuid::now_v7());
        let all: Vec<_> = (0..1_000).map(|_| publication(org)).collect();
        for (draft, event) in &all {
            cache.remember_publication(draft, event);
            assert!(cache.stats().bytes <= budget);
        }
        let (newest_draft, _) = all.last().unwrap();
        assert!(cache.publication(org, newest_draft.id).is_some());
        assert!(cache.publication(org, all[0].0.id).is_none());
    }

    #[test]
    fn a_zero_budget_turns_it_off() {
        let cache = PublishedCache::new(0);
        let org = OrganizationId::from_uuid(uuid::Uuid::now_v7());
        let (draft, event) = publication(org);
        cache.remember_publication(&draft, &event);

        assert_eq!(cache.publication(org, draft.id), None);
        assert_eq!(cache.stats(), CacheStats::default());
    }
}
