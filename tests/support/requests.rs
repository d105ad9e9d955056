//! Requests as tests write them: valid by default, with the one field under
//! test changed by struct update syntax.

use draft_publisher::proto::v1 as pb;
use prost_types::{FieldMask, Timestamp};

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A Timestamp at whole `seconds` since the epoch.
pub fn ts(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// A FieldMask naming `paths`.
pub fn mask(paths: &[&str]) -> FieldMask {
    FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }
}

/// A CreateDraft request whose draft is complete enough to publish.
pub fn complete_draft_request(organization_id: &str) -> pb::CreateDraftRequest {
    pb::CreateDraftRequest {
        organization_id: organization_id.to_owned(),
        request_id: String::new(),
        title: "Rust meetup".to_owned(),
        description: "Talks and pizza".to_owned(),
        location: "Berlin".to_owned(),
        starts_at: Some(ts(1_900_000_000)),
        ends_at: Some(ts(1_900_007_200)),
    }
}

pub fn get_draft_request(organization_id: &str, draft_id: &str) -> pb::GetDraftRequest {
    pb::GetDraftRequest { organization_id: organization_id.to_owned(), draft_id: draft_id.to_owned() }
}

pub fn get_event_request(organization_id: &str, event_id: &str) -> pb::GetEventRequest {
    pb::GetEventRequest { organization_id: organization_id.to_owned(), event_id: event_id.to_owned() }
}

/// PublishDraft now (no `publish_at`).
pub fn publish_request(organization_id: &str, draft_id: &str) -> pb::PublishDraftRequest {
    pb::PublishDraftRequest {
        organization_id: organization_id.to_owned(),
        draft_id: draft_id.to_owned(),
        publish_at: None,
    }
}

/// One page of an organisation's drafts.
pub fn list_request(
    organization_id: &str,
    page_size: i32,
    page_token: &str,
    status: pb::DraftStatus,
) -> pb::ListDraftsRequest {
    pb::ListDraftsRequest {
        organization_id: organization_id.to_owned(),
        page_size,
        page_token: page_token.to_owned(),
        status: status.into(),
    }
}

/// Requests about a draft the test already has.
pub trait DraftRequests {
    fn get_request(&self) -> pb::GetDraftRequest;
    fn publish_request(&self) -> pb::PublishDraftRequest;
    /// PublishDraft with `publish_at`.
    fn publish_at_request(&self, at: Option<Timestamp>) -> pb::PublishDraftRequest;
    /// UpdateDraft of the fields in `paths`, with every content field unset:
    /// set the new values with struct update syntax.
    fn update_request(&self, paths: &[&str]) -> pb::UpdateDraftRequest;
}

impl DraftRequests for pb::Draft {
    fn get_request(&self) -> pb::GetDraftRequest {
        get_draft_request(&self.organization_id, &self.id)
    }

    fn publish_request(&self) -> pb::PublishDraftRequest {
        publish_request(&self.organization_id, &self.id)
    }

    fn publish_at_request(&self, at: Option<Timestamp>) -> pb::PublishDraftRequest {
        pb::PublishDraftRequest { publish_at: at, ..self.publish_request() }
    }

    fn update_request(&self, paths: &[&str]) -> pb::UpdateDraftRequest {
        pb::UpdateDraftRequest {
            organization_id: self.organization_id.clone(),
            draft_id: self.id.clone(),
            update_mask: Some(mask(paths)),
            ..Default::default()
        }
    }
}
