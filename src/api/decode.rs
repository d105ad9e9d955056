//! Requests to validated domain values. Every field is checked and every
//! problem reported at once; nothing invalid gets past this module.

use prost_types::FieldMask;

use crate::{
    domain::{
        Description, DraftContent, DraftField, DraftId, DraftPatch, DraftStatus, EventId, FeedCursor,
        FieldViolation, Location, NewDraft, OrganizationId, PageSize, PageToken, RequestId, StatusFilter,
        Timestamp, Title, Violations,
    },
    error::Error,
    proto::v1 as pb,
};

/// Every request field a violation may name, spelled as in the proto.
pub const REQUEST_FIELDS: [&str; 16] = [
    "organization_id",
    "request_id",
    "title",
    "description",
    "location",
    "starts_at",
    "ends_at",
    "draft_id",
    "update_mask",
    "expected_version",
    "page_size",
    "page_token",
    "status",
    "publish_at",
    "event_id",
    "after_cursor",
];

fn timestamp(
    field: &'static str,
    value: Option<prost_types::Timestamp>,
) -> Result<Option<Timestamp>, FieldViolation> {
    value.map(|t| Timestamp::from_unix(field, t.seconds, t.nanos)).transpose()
}

fn optional_request_id(text: &str) -> Result<Option<RequestId>, FieldViolation> {
    if text.is_empty() { Ok(None) } else { RequestId::parse("request_id", text).map(Some) }
}

/// The five content fields shared by CreateDraft and UpdateDraft.
struct ContentFields {
    title: String,
    description: String,
    location: String,
    starts_at: Option<prost_types::Timestamp>,
    ends_at: Option<prost_types::Timestamp>,
}

fn content(v: &mut Violations, fields: ContentFields) -> Option<DraftContent> {
    let title = v.check(Title::parse(fields.title));
    let description = v.check(Description::parse(fields.description));
    let location = v.check(Location::parse(fields.location));
    let starts_at = v.check(timestamp("starts_at", fields.starts_at));
    let ends_at = v.check(timestamp("ends_at", fields.ends_at));
    Some(DraftContent {
        title: title?,
        description: description?,
        location: location?,
        starts_at: starts_at?,
        ends_at: ends_at?,
    })
}

pub fn create_draft(req: pb::CreateDraftRequest) -> Result<NewDraft, Error> {
    let mut v = Violations::default();
    let organization_id = v.check(OrganizationId::parse("organization_id", &req.organization_id));
    let request_id = v.check(optional_request_id(&req.request_id));
    let fields = ContentFields {
        title: req.title,
        description: req.description,
        location: req.location,
        starts_at: req.starts_at,
        ends_at: req.ends_at,
    };
    let content = content(&mut v, fields);
    if let Some(content) = &content
        && let Err(violation) = content.check_schedule("ends_at")
    {
        v.push(violation);
    }
    Ok(v.finish(|| {
        Some(NewDraft { organization_id: organization_id?, request_id: request_id?, content: content? })
    })?)
}

pub fn get_draft(req: pb::GetDraftRequest) -> Result<(OrganizationId, DraftId), Error> {
    let mut v = Violations::default();
    let (organization_id, draft_id) = draft_ids(&mut v, &req.organization_id, &req.draft_id);
    Ok(v.finish(|| Some((organization_id?, draft_id?)))?)
}

pub fn publish_draft(
    req: pb::PublishDraftRequest,
) -> Result<(OrganizationId, DraftId, Option<Timestamp>), Error> {
    let mut v = Violations::default();
    let (organization_id, draft_id) = draft_ids(&mut v, &req.organization_id, &req.draft_id);
    let publish_at = v.check(timestamp("publish_at", req.publish_at));
    Ok(v.finish(|| Some((organization_id?, draft_id?, publish_at?)))?)
}

pub fn get_event(req: pb::GetEventRequest) -> Result<(OrganizationId, EventId), Error> {
    let mut v = Violations::default();
    let organization_id = v.check(OrganizationId::parse("organization_id", &req.organization_id));
    let event_id = v.check(EventId::parse("event_id", &req.event_id));
    Ok(v.finish(|| Some((organization_id?, event_id?)))?)
}

fn draft_ids(
    v: &mut Violations,
    organization_id: &str,
    draft_id: &str,
) -> (Option<OrganizationId>, Option<DraftId>) {
    (
        v.check(OrganizationId::parse("organization_id", organization_id)),
        v.check(DraftId::parse("draft_id", draft_id)),
    )
}

/// A validated UpdateDraft request.
pub struct DraftUpdate {
    pub organization_id: OrganizationId,
    pub draft_id: DraftId,
    pub expected_version: Option<i64>,
    pub patch: DraftPatch,
}

fn update_mask(mask: Option<FieldMask>) -> Result<Vec<DraftField>, FieldViolation> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(FieldViolation::new(
            "update_mask",
            "must name at least one of title, description, location, starts_at, ends_at",
        ));
    }
    let mut fields = Vec::with_capacity(paths.len());
    for path in &paths {
        let field = DraftField::from_path(path).ok_or_else(|| {
            FieldViolation::new(
                "update_mask",
                format!("unknown path {path:?}; allowed: title, description, location, starts_at, ends_at"),
            )
        })?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

pub fn update_draft(req: pb::UpdateDraftRequest) -> Result<DraftUpdate, Error> {
    let mut v = Violations::default();
    let (organization_id, draft_id) = draft_ids(&mut v, &req.organization_id, &req.draft_id);
    let fields = v.check(update_mask(req.update_mask));
    let values = content(
        &mut v,
        ContentFields {
            title: req.title,
            description: req.description,
            location: req.location,
            starts_at: req.starts_at,
            ends_at: req.ends_at,
        },
    );
    let expected_version = match req.expected_version {
        0 => Some(None),
        n if n > 0 => Some(Some(n)),
        _ => {
            v.push(FieldViolation::new("expected_version", "must not be negative"));
            None
        }
    };
    Ok(v.finish(|| {
        Some(DraftUpdate {
            organization_id: organization_id?,
            draft_id: draft_id?,
            expected_version: expected_version?,
            patch: DraftPatch { fields: fields?, values: values? },
        })
    })?)
}

/// A validated ListEventChanges or WatchEventChanges request: where in which
/// organisation's feed to resume.
pub struct FeedRequest {
    pub cursor: FeedCursor,
    pub page_size: PageSize,
}

/// ListEventChanges' page size: 0 means this, more than `MAX_CHANGES_PAGE` that.
const DEFAULT_CHANGES_PAGE: u16 = 100;
pub const MAX_CHANGES_PAGE: u16 = 1_000;

fn feed_request(organization_id: &str, after_cursor: &str, page_size: i32) -> Result<FeedRequest, Error> {
    let mut v = Violations::default();
    let organization_id = v.check(OrganizationId::parse("organization_id", organization_id));
    let page_size = v.check(PageSize::parse_within(page_size, DEFAULT_CHANGES_PAGE, MAX_CHANGES_PAGE));
    let (organization_id, page_size) = v.finish(|| Some((organization_id?, page_size?)))?;
    let cursor = if after_cursor.is_empty() {
        FeedCursor::start(organization_id)
    } else {
        let cursor = FeedCursor::decode(after_cursor).map_err(Error::InvalidCursor)?;
        if cursor.organization_id != organization_id {
            return Err(Error::InvalidCursor("was issued for another organization_id"));
        }
        cursor
    };
    Ok(FeedRequest { cursor, page_size })
}

pub fn list_event_changes(req: pb::ListEventChangesRequest) -> Result<FeedRequest, Error> {
    feed_request(&req.organization_id, &req.after_cursor, req.page_size)
}

pub fn watch_event_changes(req: pb::WatchEventChangesRequest) -> Result<FeedRequest, Error> {
    feed_request(&req.organization_id, &req.after_cursor, 0)
}

/// A validated ListDrafts request.
pub struct DraftListing {
    pub organization_id: OrganizationId,
    pub filter: StatusFilter,
    pub page_token: Option<PageToken>,
    pub page_size: PageSize,
}

pub fn list_drafts(req: pb::ListDraftsRequest) -> Result<DraftListing, Error> {
    let mut v = Violations::default();
    let organization_id = v.check(OrganizationId::parse("organization_id", &req.organization_id));
    let page_size = v.check(PageSize::parse(req.page_size));
    let filter = v.check(match pb::DraftStatus::try_from(req.status) {
        Ok(pb::DraftStatus::Unspecified) => Ok(StatusFilter::Any),
        Ok(pb::DraftStatus::Draft) => Ok(StatusFilter::Only(DraftStatus::Draft)),
        Ok(pb::DraftStatus::Scheduled) => Ok(StatusFilter::Only(DraftStatus::Scheduled)),
        Ok(pb::DraftStatus::Published) => Ok(StatusFilter::Only(DraftStatus::Published)),
        Err(_) => Err(FieldViolation::new("status", format!("unknown DraftStatus value {}", req.status))),
    });
    let listing = v.finish(|| Some((organization_id?, page_size?, filter?)));
    let (organization_id, page_size, filter) = listing?;
    let page_token = if req.page_token.is_empty() {
        None
    } else {
        Some(PageToken::decode(&req.page_token).map_err(Error::InvalidPageToken)?)
    };
    Ok(DraftListing { organization_id, filter, page_token, page_size })
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Mostly plausible text, sometimes anything at all.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            any::<u128>().prop_map(|v| uuid::Uuid::from_u128(v).to_string()),
            "[a-z_]{0,12}",
            any::<String>(),
        ]
    }

    fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
        proptest::option::of(
            (any::<i64>(), any::<i32>())
                .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
        )
    }

    /// Valid requests decode; invalid ones are INVALID_ARGUMENT naming real fields.
    fn check<T>(result: Result<T, Error>) -> Result<(), TestCaseError> {
        match result {
            Ok(_) | Err(Error::InvalidPageToken(_)) => Ok(()),
            Err(Error::InvalidArgument(violations)) => {
                prop_assert!(!violations.is_empty());
                for v in violations {
                    prop_assert!(REQUEST_FIELDS.contains(&v.field), "unknown field {}", v.field);
                }
                Ok(())
            }
            Err(other) => Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
    }

    proptest! {
        #[test]
        fn random_create_and_update_requests_never_panic(
            (org, request_id, draft_id, title, description, location) in (text(), text(), text(), text(), text(), text()),
            (starts_at, ends_at) in (timestamp(), timestamp()),
            paths in proptest::collection::vec(text(), 0..4),
            expected_version in any::<i64>(),
        ) {
            let create = pb::CreateDraftRequest {
                organization_id: org.clone(), request_id, title: title.clone(), description: description.clone(),
                location: location.clone(), starts_at, ends_at,
            };
            check(create_draft(create))?;
            let update = pb::UpdateDraftRequest {
                organization_id: org, draft_id, title, description, location, starts_at, ends_at,
                update_mask: Some(FieldMask { paths }), expected_version,
            };
            check(update_draft(update))?;
        }

        #[test]
        fn random_read_list_and_publish_requests_never_panic(
            (org, id, page_token) in (text(), text(), text()),
            page_size in any::<i32>(),
            status in any::<i32>(),
            publish_at in timestamp(),
        ) {
            check(get_draft(pb::GetDraftRequest { organization_id: org.clone(), draft_id: id.clone() }))?;
            check(get_event(pb::GetEventRequest { organization_id: org.clone(), event_id: id.clone() }))?;
            let publish = pb::PublishDraftRequest { organization_id: org.clone(), draft_id: id, publish_at };
            check(publish_draft(publish))?;
            check(list_drafts(pb::ListDraftsRequest { organization_id: org, page_size, page_token, status }))?;
        }
    }
}
