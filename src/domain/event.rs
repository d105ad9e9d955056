//! A published event: an immutable copy of its draft's content.

use super::{DraftId, EventId, OrganizationId, Timestamp};

/// Whether an event is live yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Scheduled,
    Published,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub organization_id: OrganizationId,
    pub draft_id: DraftId,
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub publish_time: Timestamp,
    pub create_time: Timestamp,
}

impl Event {
    /// Scheduled until its publish time, published from then on: no job has
    /// to flip it.
    pub fn status(&self, now: Timestamp) -> EventStatus {
        if self.publish_time > now { EventStatus::Scheduled } else { EventStatus::Published }
    }
}
