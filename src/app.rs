//! The use cases behind the six RPCs: domain rules applied against the store,
//! with the bounded retries that concurrency calls for.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::{
    cache::{CacheStats, PublishedCache},
    defaults,
    domain::{
        Clock, Cursor, Draft, DraftId, DraftPatch, Event, EventId, NewDraft, OrganizationId, PageSize,
        PageToken, StatusFilter, Timestamp,
    },
    domain::{EventChange, FeedCursor, Position},
    error::Error,
    feed::Feed,
    in_flight::{PublishesInFlight, Turn},
    store::{self, CreatedDraft, Publishing, Store},
};

/// Attempts per call when concurrent writers keep getting in the way.
const MAX_ATTEMPTS: usize = 8;

/// How a PublishDraft call ended, for the answer and for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// This call created the event.
    Created,
    /// The draft was already published when the call read it.
    AlreadyPublished,
    /// A concurrent call won on the one-event-per-draft constraint; this one
    /// rolled back and answers with the winner's event.
    LostRace,
    /// A concurrent call on this replica was publishing the draft; this one
    /// waited for it and answers with its event, without a statement of its
    /// own.
    Joined,
}

#[derive(Debug, Clone)]
pub struct Publication {
    pub draft: Draft,
    pub event: Event,
    pub outcome: PublishOutcome,
}

impl Publication {
    pub fn already_published(&self) -> bool {
        self.outcome != PublishOutcome::Created
    }

    /// Changes this call wrote to the feed: SCHEDULED (when scheduled) and
    /// PUBLISHED if it created the event, none otherwise.
    pub fn changes_written(&self) -> ChangesWritten {
        let written = match self.outcome {
            PublishOutcome::Created if self.event.publish_time > self.event.create_time => 2,
            PublishOutcome::Created => 1,
            PublishOutcome::AlreadyPublished | PublishOutcome::LostRace | PublishOutcome::Joined => 0,
        };
        ChangesWritten(written)
    }
}

/// How many feed changes a call wrote, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangesWritten(pub usize);

#[derive(Debug, Clone)]
pub struct DraftPage {
    pub drafts: Vec<Draft>,
    pub next_page_token: Option<PageToken>,
}

/// The service's operations; cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Store,
    clock: Arc<dyn Clock>,
    feed: Feed,
    published: Arc<PublishedCache>,
    in_flight: Arc<PublishesInFlight>,
}

impl App {
    /// The use cases over `store`, with a published-draft cache of the
    /// default size.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self::with_cache(store, clock, defaults::PUBLISHED_CACHE_BYTES)
    }

    /// As `new`, with a published-draft cache of about `cache_bytes` (0: none).
    pub fn with_cache(store: Store, clock: Arc<dyn Clock>, cache_bytes: usize) -> Self {
        Self {
            store,
            clock,
            feed: Feed::new(),
            published: Arc::new(PublishedCache::new(cache_bytes)),
            in_flight: Arc::default(),
        }
    }

    /// PublishDraft calls waiting now for a publish of the same draft in
    /// flight on this replica, for the metrics.
    pub fn publishes_waiting(&self) -> usize {
        self.in_flight.waiting()
    }

    /// The published-draft cache's hits, misses and size, for the metrics.
    pub fn cache_stats(&self) -> CacheStats {
        self.published.stats()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// This replica's change feed, whose tasks `server` runs.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    pub async fn create_draft(&self, new: NewDraft) -> Result<Draft, Error> {
        retry(|| async {
            match self.store.create_draft(DraftId::generate(), &new, self.now()).await? {
                CreatedDraft::Created(draft) | CreatedDraft::Existing(draft) => Ok(draft),
                CreatedDraft::RequestIdReused => Err(Error::RequestIdReused),
            }
        })
        .await
    }

    pub async fn get_draft(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
    ) -> Result<Draft, Error> {
        self.store.get_draft(organization_id, draft_id).await?.ok_or(Error::DraftNotFound)
    }

    /// Applies the patch to the draft as it is now, and writes it only if
    /// nobody changed the draft in between (compare-and-set on the version):
    /// no lost updates, with or without `expected_version`.
    pub async fn update_draft(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
        expected_version: Option<i64>,
        patch: DraftPatch,
    ) -> Result<Draft, Error> {
        retry(|| async {
            let draft = self.get_draft(organization_id, draft_id).await?;
            if draft.is_published() {
                return Err(Error::DraftAlreadyPublished);
            }
            if let Some(expected) = expected_version.filter(|v| *v != draft.version) {
                return Err(Error::VersionMismatch { expected, current: draft.version });
            }
            let content = patch.apply(&draft.content)?;
            Ok(self.store.update_draft_content(&draft, &content, self.now()).await?)
        })
        .await
    }

    pub async fn list_drafts(
        &self,
        organization_id: OrganizationId,
        filter: StatusFilter,
        page_token: Option<PageToken>,
        page_size: PageSize,
    ) -> Result<DraftPage, Error> {
        let after = match page_token {
            None => None,
            Some(token) if token.organization_id != organization_id => {
                return Err(Error::InvalidPageToken("was issued for another organization_id"));
            }
            Some(token) if token.filter != filter => {
                return Err(Error::InvalidPageToken("was issued for another status filter"));
            }
            Some(token) => Some(token.after),
        };
        let mut drafts =
            self.store.list_drafts(organization_id, filter, after, page_size, self.now()).await?;
        let next_page_token = if drafts.len() > usize::from(page_size.get()) {
            drafts.truncate(page_size.get().into());
            drafts.last().map(|last| PageToken {
                organization_id,
                filter,
                after: Cursor { create_time: last.create_time, draft_id: last.id },
            })
        } else {
            None
        };
        Ok(DraftPage { drafts, next_page_token })
    }

    /// Publishes a draft exactly once.
    ///
    /// One statement reads the draft and, when it is unpublished and its
    /// content was complete when written, creates and links its event: one
    /// round trip, fresh or repeated. The database decides races: a
    /// concurrent publisher loses on the one-event-per-draft constraint,
    /// rolls back whole and, on the next attempt, finds and returns the
    /// winner's event. A draft the statement would not publish is checked
    /// here, where the completeness rules live.
    pub async fn publish_draft(
        &self,
        organization_id: OrganizationId,
        draft_id: DraftId,
        publish_at: Option<Timestamp>,
    ) -> Result<Publication, Error> {
        if let Some((draft, event)) = self.published.publication(organization_id, draft_id) {
            return Ok(Publication { draft, event, outcome: PublishOutcome::AlreadyPublished });
        }
        let leading = match self.in_flight.join(organization_id, draft_id) {
            Turn::Lead(leading) => Some(leading),
            Turn::Wait(waiting) => match waiting.answer().await {
                Some((draft, event)) => {
                    return Ok(Publication { draft, event, outcome: PublishOutcome::Joined });
                }
                // It ended without publishing: publish as if alone.
                None => None,
            },
        };
        let lost_race = AtomicBool::new(false);
        let publication = retry(|| async {
            let now = self.now();
            let publish_time = publish_at.filter(|at| *at > now).unwrap_or(now);
            let published =
                self.store.publish(organization_id, draft_id, EventId::generate(), publish_time, now);
            match published.await {
                Ok(None) => Err(Error::DraftNotFound),
                Ok(Some(Publishing::Created(draft, event))) => {
                    self.feed.changes_written();
                    Ok(Publication { draft, event, outcome: PublishOutcome::Created })
                }
                Ok(Some(Publishing::Existing(draft, event))) => {
                    let outcome = if lost_race.load(Ordering::Relaxed) {
                        PublishOutcome::LostRace
                    } else {
                        PublishOutcome::AlreadyPublished
                    };
                    Ok(Publication { draft, event, outcome })
                }
                Ok(Some(Publishing::NotPublishable(draft))) => {
                    draft.content.check_complete()?;
                    // Complete, but written before drafts carried the flag:
                    // flag it, and the next attempt publishes it.
                    self.store.mark_publishable(&draft).await?;
                    Err(store::Error::DraftChanged.into())
                }
                Err(store::Error::PublishRaceLost) => {
                    lost_race.store(true, Ordering::Relaxed);
                    Err(store::Error::PublishRaceLost.into())
                }
                Err(other) => Err(other.into()),
            }
        })
        .await?;
        self.published.remember_publication(&publication.draft, &publication.event);
        if let Some(leading) = leading {
            leading.published(&publication.draft, &publication.event);
        }
        Ok(publication)
    }

    pub async fn get_event(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
    ) -> Result<Event, Error> {
        if let Some(event) = self.published.event(organization_id, event_id) {
            return Ok(event);
        }
        let event = self.store.get_event(organization_id, event_id).await?.ok_or(Error::EventNotFound)?;
        self.published.remember_event(&event);
        Ok(event)
    }
}

impl App {
    /// Up to `page_size` of the organisation's changes after the cursor.
    pub async fn list_event_changes(
        &self,
        after: FeedCursor,
        page_size: u16,
    ) -> Result<Vec<EventChange>, Error> {
        Ok(self.store.list_changes(after.organization_id, after.after, page_size).await?)
    }

    /// The organisation's next changes after the cursor, waiting (for as
    /// long as it takes) until there is at least one. `wake` comes from
    /// `feed().subscribe(organisation)`, taken before the first read so that
    /// no change committed in between goes unnoticed.
    pub async fn next_event_changes(
        &self,
        after: FeedCursor,
        page_size: u16,
        wake: &mut tokio::sync::watch::Receiver<Position>,
    ) -> Result<Vec<EventChange>, Error> {
        loop {
            // Marked seen before reading: a change announced after this
            // point wakes the next wait.
            wake.borrow_and_update();
            let changes = self.list_event_changes(after, page_size).await?;
            if !changes.is_empty() {
                return Ok(changes);
            }
            if wake.changed().await.is_err() {
                // The feed is gone: the server is stopping.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Runs `attempt` until it succeeds or fails with a lasting error, at most
/// `MAX_ATTEMPTS` times. Conflicts are resolved by reading again, so no
/// back-off is needed: each retry sees the state the winner committed.
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    for _ in 1..MAX_ATTEMPTS {
        match attempt().await {
            Err(error) if error.is_transient() => {
                tracing::debug!(%error, "retrying after a concurrent change");
            }
            result => return result,
        }
    }
    match attempt().await {
        Err(error) if error.is_transient() => Err(Error::ContentionExhausted),
        result => result,
    }
}
