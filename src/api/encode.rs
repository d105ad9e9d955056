//! Domain values to response messages; statuses are computed against the
//! clock at the moment of the answer.

use crate::{
    domain::{ChangeKind, Draft, DraftStatus, Event, EventChange, EventStatus, Timestamp},
    proto::v1 as pb,
};

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.unix_seconds(), nanos: t.subsec_nanos() }
}

pub fn draft_status(status: DraftStatus) -> pb::DraftStatus {
    match status {
        DraftStatus::Draft => pb::DraftStatus::Draft,
        DraftStatus::Scheduled => pb::DraftStatus::Scheduled,
        DraftStatus::Published => pb::DraftStatus::Published,
    }
}

pub fn draft(draft: Draft, now: Timestamp) -> pb::Draft {
    let status = draft_status(draft.status(now));
    pb::Draft {
        id: draft.id.to_string(),
        organization_id: draft.organization_id.to_string(),
        title: draft.content.title.into_string(),
        description: draft.content.description.into_string(),
        location: draft.content.location.into_string(),
        starts_at: draft.content.starts_at.map(timestamp),
        ends_at: draft.content.ends_at.map(timestamp),
        status: status.into(),
        event_id: draft.event_id.map(|id| id.to_string()).unwrap_or_default(),
        version: draft.version,
        create_time: Some(timestamp(draft.create_time)),
        update_time: Some(timestamp(draft.update_time)),
        publish_time: draft.publish_time.map(timestamp),
    }
}

pub fn event(event: Event, now: Timestamp) -> pb::Event {
    let status = match event.status(now) {
        EventStatus::Scheduled => pb::EventStatus::Scheduled,
        EventStatus::Published => pb::EventStatus::Published,
    };
    pb::Event {
        id: event.id.to_string(),
        organization_id: event.organization_id.to_string(),
        draft_id: event.draft_id.to_string(),
        title: event.title,
        description: event.description,
        location: event.location,
        starts_at: Some(timestamp(event.starts_at)),
        ends_at: Some(timestamp(event.ends_at)),
        status: status.into(),
        publish_time: Some(timestamp(event.publish_time)),
        create_time: Some(timestamp(event.create_time)),
    }
}

/// A change, its event's status as of the change.
pub fn event_change(change: EventChange) -> pb::EventChange {
    let change_time = change.change_time();
    let kind = match change.kind {
        ChangeKind::Scheduled => pb::EventChangeType::Scheduled,
        ChangeKind::Published => pb::EventChangeType::Published,
    };
    pb::EventChange {
        id: change.id().to_string(),
        r#type: kind.into(),
        cursor: change.cursor().encode(),
        change_time: Some(timestamp(change_time)),
        event: Some(event(change.event, change_time)),
    }
}
