//! Hostile input, one exhaustive table: every request field of every RPC
//! gets empty, malformed, out-of-range, oversized and forged values. Each
//! must be answered with the contract's code and reason — never INTERNAL or
//! UNKNOWN — and the server must keep serving after every one.

mod values;

use draft_publisher::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::{Code, Status};

use self::values::*;
use crate::support::*;

#[derive(Debug)]
enum Call {
    Create(pb::CreateDraftRequest),
    Get(pb::GetDraftRequest),
    Update(pb::UpdateDraftRequest),
    List(pb::ListDraftsRequest),
    Publish(pb::PublishDraftRequest),
    GetEvent(pb::GetEventRequest),
}

impl Call {
    async fn send(self, client: &TestClient) -> Result<(), Status> {
        match self {
            Self::Create(r) => client.create_draft(r).await.map(drop),
            Self::Get(r) => client.get_draft(r).await.map(drop),
            Self::Update(r) => client.update_draft(r).await.map(drop),
            Self::List(r) => client.list_drafts(r).await.map(drop),
            Self::Publish(r) => client.publish_draft(r).await.map(drop),
            Self::GetEvent(r) => client.get_event(r).await.map(drop),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Ok,
    /// INVALID_ARGUMENT with this reason and a BadRequest naming this field.
    Invalid(&'static str, &'static str),
    /// ABORTED, VERSION_MISMATCH.
    VersionMismatch,
    /// Rejected unread by the message size limit.
    TooLarge,
}

fn invalid(field: &'static str) -> Expect {
    Expect::Invalid("INVALID_REQUEST", field)
}

fn invalid_token() -> Expect {
    Expect::Invalid("INVALID_PAGE_TOKEN", "page_token")
}

/// The table: a name, a call and the answer the contract gives it.
#[derive(Default)]
struct Table(Vec<(String, Call, Expect)>);

impl Table {
    fn add(&mut self, name: impl Into<String>, call: Call, expect: Expect) {
        self.0.push((name.into(), call, expect));
    }
}

/// What the requests refer to: real ids, so valid calls succeed. Each
/// method returns a valid call of one RPC after `edit` made it hostile.
struct World {
    org: String,
    /// An unpublished draft, the target of updates.
    draft: String,
    /// An unpublished draft no case publishes, the target of bad publishes.
    publish_target: String,
    /// Unpublished drafts, one per publish expected to succeed.
    to_publish: Vec<String>,
    event: String,
    page_token: String,
}

impl World {
    fn create(&self, edit: impl FnOnce(&mut pb::CreateDraftRequest)) -> Call {
        let mut r = complete_draft_request(&self.org);
        edit(&mut r);
        Call::Create(r)
    }
    fn get(&self, edit: impl FnOnce(&mut pb::GetDraftRequest)) -> Call {
        let mut r = self.get_request();
        edit(&mut r);
        Call::Get(r)
    }
    fn get_request(&self) -> pb::GetDraftRequest {
        pb::GetDraftRequest { organization_id: self.org.clone(), draft_id: self.draft.clone() }
    }
    fn update(&self, edit: impl FnOnce(&mut pb::UpdateDraftRequest)) -> Call {
        let mut r = pb::UpdateDraftRequest {
            organization_id: self.org.clone(),
            draft_id: self.draft.clone(),
            title: "Updated".into(),
            update_mask: Some(mask(&["title"])),
            ..Default::default()
        };
        edit(&mut r);
        Call::Update(r)
    }
    fn list(&self, edit: impl FnOnce(&mut pb::ListDraftsRequest)) -> Call {
        let mut r =
            pb::ListDraftsRequest { organization_id: self.org.clone(), page_size: 1, ..Default::default() };
        edit(&mut r);
        Call::List(r)
    }
    fn publish(&self, edit: impl FnOnce(&mut pb::PublishDraftRequest)) -> Call {
        let mut r = pb::PublishDraftRequest {
            organization_id: self.org.clone(),
            draft_id: self.publish_target.clone(),
            publish_at: None,
        };
        edit(&mut r);
        Call::Publish(r)
    }
    fn get_event(&self, edit: impl FnOnce(&mut pb::GetEventRequest)) -> Call {
        let mut r = pb::GetEventRequest { organization_id: self.org.clone(), event_id: self.event.clone() };
        edit(&mut r);
        Call::GetEvent(r)
    }
}

fn id_cases(w: &World, t: &mut Table) {
    for (label, bad) in bad_uuids() {
        let b = || bad.clone();
        let id = |field: &'static str| (format!("{field}: {label}"), invalid(field));
        let (name, expect) = id("organization_id");
        t.add(format!("Create.{name}"), w.create(|r| r.organization_id = b()), expect);
        t.add(format!("Get.{name}"), w.get(|r| r.organization_id = b()), expect);
        t.add(format!("Update.{name}"), w.update(|r| r.organization_id = b()), expect);
        t.add(format!("List.{name}"), w.list(|r| r.organization_id = b()), expect);
        t.add(format!("Publish.{name}"), w.publish(|r| r.organization_id = b()), expect);
        t.add(format!("GetEvent.{name}"), w.get_event(|r| r.organization_id = b()), expect);
        let (name, expect) = id("draft_id");
        t.add(format!("Get.{name}"), w.get(|r| r.draft_id = b()), expect);
        t.add(format!("Update.{name}"), w.update(|r| r.draft_id = b()), expect);
        t.add(format!("Publish.{name}"), w.publish(|r| r.draft_id = b()), expect);
        let (name, expect) = id("event_id");
        t.add(format!("GetEvent.{name}"), w.get_event(|r| r.event_id = b()), expect);
        if !bad.is_empty() {
            // An empty request_id means "no idempotency key".
            let (name, expect) = id("request_id");
            t.add(format!("Create.{name}"), w.create(|r| r.request_id = b()), expect);
        }
    }
}

fn text_cases(w: &World, t: &mut Table) {
    for (field, limit) in [("title", 200), ("description", 10_000), ("location", 500)] {
        let mut values = vec![("NUL".to_owned(), "a\0b".to_owned(), invalid(field))];
        for c in ['x', 'é', '€', '🎉'] {
            values.push((format!("{limit} × {c:?}"), text(c, limit), Expect::Ok));
            values.push((format!("{} × {c:?}", limit + 1), text(c, limit + 1), invalid(field)));
        }
        for (label, value, expect) in values {
            let v = || value.clone();
            let create = match field {
                "title" => w.create(|r| r.title = v()),
                "description" => w.create(|r| r.description = v()),
                _ => w.create(|r| r.location = v()),
            };
            let update = w.update(|r| {
                r.update_mask = Some(mask(&[field]));
                match field {
                    "title" => r.title = v(),
                    "description" => r.description = v(),
                    _ => r.location = v(),
                }
            });
            t.add(format!("Create.{field}: {label}"), create, expect);
            t.add(format!("Update.{field}: {label}"), update, expect);
        }
    }
}

fn timestamp_cases(w: &World, t: &mut Table) {
    for (label, bad) in bad_timestamps() {
        t.add(format!("Create.starts_at: {label}"), w.create(|r| r.starts_at = bad), invalid("starts_at"));
        t.add(format!("Create.ends_at: {label}"), w.create(|r| r.ends_at = bad), invalid("ends_at"));
        let both = || Some(mask(&["starts_at", "ends_at"]));
        let update =
            w.update(|r| (r.update_mask, r.starts_at, r.ends_at) = (both(), bad, at(1_900_007_200, 0)));
        t.add(format!("Update.starts_at: {label}"), update, invalid("starts_at"));
        let update = w.update(|r| (r.update_mask, r.ends_at) = (both(), bad));
        t.add(format!("Update.ends_at: {label}"), update, invalid("ends_at"));
        t.add(
            format!("Publish.publish_at: {label}"),
            w.publish(|r| r.publish_at = bad),
            invalid("publish_at"),
        );
    }
    // The range's own ends are valid.
    let (first, last) = (at(MIN_SECONDS, 0), at(MAX_SECONDS, 999_999_999));
    t.add(
        "Create: the whole Timestamp range",
        w.create(|r| (r.starts_at, r.ends_at) = (first, last)),
        Expect::Ok,
    );
    for (draft, publish_at) in w.to_publish.iter().zip([first, last]) {
        let publish = w.publish(|r| (r.draft_id, r.publish_at) = (draft.clone(), publish_at));
        t.add(format!("Publish.publish_at: {publish_at:?}"), publish, Expect::Ok);
    }
}

fn list_cases(w: &World, t: &mut Table) {
    for page_size in [-1, i32::MIN] {
        t.add(
            format!("List.page_size: {page_size}"),
            w.list(|r| r.page_size = page_size),
            invalid("page_size"),
        );
    }
    for page_size in [0, 1, 500, 501, i32::MAX] {
        t.add(format!("List.page_size: {page_size}"), w.list(|r| r.page_size = page_size), Expect::Ok);
    }
    for status in [4, 99, -1, i32::MAX, i32::MIN] {
        t.add(
            format!("List.status: unknown value {status}"),
            w.list(|r| r.status = status),
            invalid("status"),
        );
    }
    let real = &w.page_token;
    let mut garbled = real.clone().into_bytes();
    garbled[10] = if garbled[10] == b'A' { b'B' } else { b'A' };
    let tokens = [
        ("not base64", "%%%".to_owned()),
        ("too short", "AAAA".to_owned()),
        ("NUL", "AAAA\0AAAA".to_owned()),
        ("one character changed", String::from_utf8(garbled).unwrap()),
        ("truncated", real[..real.len() - 2].to_owned()),
        ("extended", format!("{real}AAAA")),
        ("padded base64", format!("{real}=")),
        ("100 KiB", "A".repeat(100 * 1024)),
        ("forged: unknown version", forged_token(real, |b| b[0] = 2)),
        ("forged: unknown filter", forged_token(real, |b| b[17] = 9)),
        (
            "forged: time out of range",
            forged_token(real, |b| b[18..26].copy_from_slice(&i64::MAX.to_be_bytes())),
        ),
        (
            "forged: time before 4713 BC",
            forged_token(real, |b| b[18..26].copy_from_slice(&(-250_000_000_000_000_000i64).to_be_bytes())),
        ),
        ("forged: another organisation", forged_token(real, |b| b[1..17].copy_from_slice(&[7; 16]))),
        ("forged: another filter", forged_token(real, |b| b[17] = 1)),
    ];
    for (label, page_token) in tokens {
        t.add(format!("List.page_token: {label}"), w.list(|r| r.page_token = page_token), invalid_token());
    }
    // A real token is refused in another organisation.
    let other = w.list(|r| (r.organization_id, r.page_token) = (new_id(), real.clone()));
    t.add("List.page_token: issued for another organisation", other, invalid_token());
}

fn update_mask_and_version_cases(w: &World, t: &mut Table) {
    let masks: [(&str, Option<FieldMask>); 15] = [
        ("absent", None),
        ("no paths", Some(mask(&[]))),
        ("empty path", Some(mask(&[""]))),
        ("unknown path", Some(mask(&["nope"]))),
        ("one unknown among known", Some(mask(&["title", "nope"]))),
        ("wrong case", Some(mask(&["Title"]))),
        ("sub-path", Some(mask(&["title.text"]))),
        ("wildcard", Some(mask(&["*"]))),
        ("camelCase", Some(mask(&["startsAt"]))),
        ("NUL", Some(mask(&["title\0"]))),
        ("read-only id", Some(mask(&["id"]))),
        ("read-only status", Some(mask(&["status"]))),
        ("read-only event_id", Some(mask(&["event_id"]))),
        ("read-only version", Some(mask(&["version"]))),
        ("read-only organization_id", Some(mask(&["organization_id"]))),
    ];
    for (label, update_mask) in masks {
        t.add(
            format!("Update.update_mask: {label}"),
            w.update(|r| r.update_mask = update_mask),
            invalid("update_mask"),
        );
    }
    for version in [-1, i64::MIN] {
        let update = w.update(|r| r.expected_version = version);
        t.add(format!("Update.expected_version: {version}"), update, invalid("expected_version"));
    }
    let update = w.update(|r| r.expected_version = i64::MAX);
    t.add("Update.expected_version: i64::MAX", update, Expect::VersionMismatch);
}

fn oversized_cases(w: &World, t: &mut Table) {
    let huge = || "x".repeat(5 * 1024 * 1024);
    t.add("Create: 5 MiB description", w.create(|r| r.description = huge()), Expect::TooLarge);
    t.add("Get: 5 MiB draft_id", w.get(|r| r.draft_id = huge()), Expect::TooLarge);
    t.add("Update: 5 MiB title", w.update(|r| r.title = huge()), Expect::TooLarge);
    t.add("List: 5 MiB page_token", w.list(|r| r.page_token = huge()), Expect::TooLarge);
    t.add("Publish: 5 MiB organization_id", w.publish(|r| r.organization_id = huge()), Expect::TooLarge);
    t.add("GetEvent: 5 MiB event_id", w.get_event(|r| r.event_id = huge()), Expect::TooLarge);
}

async fn world(app: &TestApp) -> World {
    let org = new_id();
    let published = app.complete_draft(&org).await.id;
    let event = app.publish(&org, &published).await.unwrap().event_id;
    let draft = app.complete_draft(&org).await.id;
    let publish_target = app.complete_draft(&org).await.id;
    let to_publish = vec![app.complete_draft(&org).await.id, app.complete_draft(&org).await.id];
    let list = pb::ListDraftsRequest { organization_id: org.clone(), page_size: 1, ..Default::default() };
    let page_token = app.list_drafts(list).await.unwrap().next_page_token;
    World { org, draft, publish_target, to_publish, event, page_token }
}

#[track_caller]
fn check(name: &str, result: Result<(), Status>, expect: Expect) {
    match (expect, result) {
        (Expect::Ok, Ok(())) => {}
        (Expect::Invalid(reason, field), Err(status)) => {
            assert_error(&status, Code::InvalidArgument, reason);
            assert_invalid_field(&status, field);
        }
        (Expect::VersionMismatch, Err(status)) => {
            assert_error(&status, Code::Aborted, "VERSION_MISMATCH");
        }
        (Expect::TooLarge, Err(status)) => {
            assert_error(&status, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
        }
        (expect, result) => panic!("{name}: expected {expect:?}, got {result:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_field_value_gets_the_contracts_answer_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let mut table = Table::default();
    id_cases(&w, &mut table);
    text_cases(&w, &mut table);
    timestamp_cases(&w, &mut table);
    list_cases(&w, &mut table);
    update_mask_and_version_cases(&w, &mut table);
    oversized_cases(&w, &mut table);
    let cases = table.0;
    let drafts_before = app.count("SELECT count(*) FROM drafts").await;
    let creates_ok =
        cases.iter().filter(|(_, call, e)| matches!((call, e), (Call::Create(_), Expect::Ok))).count();
    let total = cases.len();

    for (name, call, expect) in cases {
        let result = call.send(&app).await;
        if let Err(status) = &result {
            assert!(!matches!(status.code(), Code::Internal | Code::Unknown), "{name}: {status:?}");
        }
        check(&name, result, expect);
        // Still serving, on the same connection.
        app.get_draft(w.get_request()).await.unwrap_or_else(|s| panic!("after {name}: {s:?}"));
    }

    eprintln!("{total} hostile cases answered as the contract says");
    assert!(total > 250, "{total} cases");
    let drafts_after = app.count("SELECT count(*) FROM drafts").await;
    assert_eq!(drafts_after - drafts_before, creates_ok as i64, "only valid creates wrote a draft");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 3, "only valid publishes wrote an event");
}
