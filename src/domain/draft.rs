//! A draft and the rules of its life: content may be incomplete until
//! publication, only named fields change, and a published draft is frozen.

use sha2::{Digest, Sha256};

use super::{
    Description, DraftId, DraftIncomplete, EventId, FieldViolation, Invalid, Location, OrganizationId,
    RequestId, Timestamp, Title,
};

/// Where a draft is in its life, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftStatus {
    Draft,
    /// Published, going live at a future publish time.
    Scheduled,
    Published,
}

/// The ListDrafts status filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Any,
    Only(DraftStatus),
}

/// The editable content of a draft.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftContent {
    pub title: Title,
    pub description: Description,
    pub location: Location,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
}

impl DraftContent {
    /// Content may be incomplete, but never ends before it starts.
    /// `field` names the request field to blame.
    pub fn check_schedule(&self, field: &'static str) -> Result<(), FieldViolation> {
        match (self.starts_at, self.ends_at) {
            (Some(starts_at), Some(ends_at)) if ends_at < starts_at => Err(FieldViolation::new(
                field,
                format!("ends_at ({ends_at}) must not be before starts_at ({starts_at})"),
            )),
            _ => Ok(()),
        }
    }

    /// Publication needs a non-blank title and a start before the end; every
    /// missing or wrong field is reported.
    pub fn check_complete(&self) -> Result<(), DraftIncomplete> {
        let mut missing = Vec::new();
        if self.title.as_str().trim().is_empty() {
            missing.push(FieldViolation::new("title", "must not be blank"));
        }
        if self.starts_at.is_none() {
            missing.push(FieldViolation::new("starts_at", "must be set"));
        }
        match (self.starts_at, self.ends_at) {
            (_, None) => missing.push(FieldViolation::new("ends_at", "must be set")),
            (Some(starts_at), Some(ends_at)) if ends_at <= starts_at => {
                missing.push(FieldViolation::new("ends_at", "must be after starts_at"))
            }
            _ => {}
        }
        if missing.is_empty() { Ok(()) } else { Err(DraftIncomplete(missing)) }
    }

    /// A digest of the content, to tell a CreateDraft retry (same content)
    /// from a reuse of its request_id with other content.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut hasher = Sha256::new();
        for text in [self.title.as_str(), self.description.as_str(), self.location.as_str()] {
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
        for instant in [self.starts_at, self.ends_at] {
            match instant {
                None => hasher.update([0]),
                Some(t) => {
                    hasher.update([1]);
                    hasher.update(t.unix_seconds().to_be_bytes());
                    hasher.update(t.subsec_nanos().to_be_bytes());
                }
            }
        }
        hasher.finalize().to_vec()
    }
}

/// A CreateDraft request, validated.
#[derive(Debug, Clone)]
pub struct NewDraft {
    pub organization_id: OrganizationId,
    pub request_id: Option<RequestId>,
    pub content: DraftContent,
}

/// The fields UpdateDraft may change, as named in its update_mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftField {
    Title,
    Description,
    Location,
    StartsAt,
    EndsAt,
}

impl DraftField {
    pub const ALL: [DraftField; 5] =
        [Self::Title, Self::Description, Self::Location, Self::StartsAt, Self::EndsAt];

    /// The field's name in the proto and in update_mask paths.
    pub fn name(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Description => "description",
            Self::Location => "location",
            Self::StartsAt => "starts_at",
            Self::EndsAt => "ends_at",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.name() == path)
    }
}

/// An UpdateDraft request's changes: new values for the masked fields.
#[derive(Debug, Clone)]
pub struct DraftPatch {
    pub fields: Vec<DraftField>,
    pub values: DraftContent,
}

impl DraftPatch {
    /// The content after the patch, which must still not end before it starts.
    pub fn apply(&self, current: &DraftContent) -> Result<DraftContent, Invalid> {
        let mut next = current.clone();
        for field in &self.fields {
            match field {
                DraftField::Title => next.title = self.values.title.clone(),
                DraftField::Description => next.description = self.values.description.clone(),
                DraftField::Location => next.location = self.values.location.clone(),
                DraftField::StartsAt => next.starts_at = self.values.starts_at,
                DraftField::EndsAt => next.ends_at = self.values.ends_at,
            }
        }
        let blamed = if self.fields.contains(&DraftField::EndsAt) { "ends_at" } else { "starts_at" };
        next.check_schedule(blamed).map_err(|violation| Invalid(vec![violation]))?;
        Ok(next)
    }
}

/// A stored draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub id: DraftId,
    pub organization_id: OrganizationId,
    pub content: DraftContent,
    pub event_id: Option<EventId>,
    pub version: i64,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    pub publish_time: Option<Timestamp>,
}

impl Draft {
    pub fn status(&self, now: Timestamp) -> DraftStatus {
        match (self.event_id, self.publish_time) {
            (Some(_), Some(publish_time)) if publish_time > now => DraftStatus::Scheduled,
            (Some(_), _) => DraftStatus::Published,
            (None, _) => DraftStatus::Draft,
        }
    }

    /// Published and scheduled drafts are frozen.
    pub fn is_published(&self) -> bool {
        self.event_id.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp::from_unix("t", seconds, 0).unwrap())
    }

    fn complete() -> DraftContent {
        DraftContent {
            title: Title::parse("Launch".into()).unwrap(),
            starts_at: at(100),
            ends_at: at(200),
            ..DraftContent::default()
        }
    }

    fn incomplete_fields(content: &DraftContent) -> Vec<&'static str> {
        match content.check_complete() {
            Ok(()) => vec![],
            Err(DraftIncomplete(violations)) => violations.iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn completeness_reports_every_missing_or_wrong_field() {
        assert!(incomplete_fields(&complete()).is_empty());
        assert_eq!(incomplete_fields(&DraftContent::default()), ["title", "starts_at", "ends_at"]);
        let blank = DraftContent { title: Title::parse(" \t".into()).unwrap(), ..complete() };
        assert_eq!(incomplete_fields(&blank), ["title"]);
        let zero_length = DraftContent { ends_at: at(100), ..complete() };
        assert_eq!(incomplete_fields(&zero_length), ["ends_at"]);
    }

    #[test]
    fn patch_changes_only_masked_fields() {
        let patch = DraftPatch {
            fields: vec![DraftField::Location],
            values: DraftContent {
                location: Location::parse("Berlin".into()).unwrap(),
                ..DraftContent::default()
            },
        };
        let next = patch.apply(&complete()).unwrap();
        assert_eq!(next.location.as_str(), "Berlin");
        assert_eq!(next.title, complete().title);
        assert_eq!(next.starts_at, complete().starts_at);
    }

    #[test]
    fn patch_may_not_leave_the_end_before_the_start() {
        let patch = DraftPatch {
            fields: vec![DraftField::StartsAt],
            values: DraftContent { starts_at: at(300), ..DraftContent::default() },
        };
        match patch.apply(&complete()) {
            Err(Invalid(violations)) => assert_eq!(violations[0].field, "starts_at"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fingerprint_tells_content_apart() {
        let other = DraftContent { ends_at: at(201), ..complete() };
        assert_eq!(complete().fingerprint(), complete().fingerprint());
        assert_ne!(complete().fingerprint(), other.fingerprint());
    }
}
