//! Credentials scoped to organisations: a token file line's `org=` limits
//! what its token may reach. A call for another organisation is
//! PERMISSION_DENIED (`ORGANIZATION_NOT_ALLOWED`) and reads or writes
//! nothing, on every RPC; tokens may be configured by their SHA-256 digest;
//! a malformed line stops the server at start-up.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;
use sha2::{Digest, Sha256};
use tonic::{Code, Status};

use crate::support::{binary, database::UNREACHABLE_DATABASE_URL, *};

/// Two organisations, a token for each, one for both, and one configured
/// only by its digest.
struct Tenants {
    app: TestApp,
    org_a: String,
    org_b: String,
    team_a: TestClient,
    ops: TestClient,
}

const TEAM_A_TOKEN: &str = "team-a-token-0c1d";
const TEAM_B_TOKEN: &str = "team-b-token-77f2";
const OPS_TOKEN: &str = "ops-token-e8a9";
const HASHED_TOKEN: &str = "hashed-token-4b6e";

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

async fn tenants() -> Tenants {
    let (org_a, org_b) = (new_id(), new_id());
    let token_file = format!(
        "# one line per caller\n\
         {TEAM_A_TOKEN} name=team-a org={org_a}\n\
         {TEAM_B_TOKEN} name=team-b org={org_b}\n\
         \n\
         {OPS_TOKEN} name=ops org=*\n\
         sha256:{} name=hashed org={org_a},{org_b}\n",
        sha256_hex(HASHED_TOKEN)
    );
    let app = TestApp::builder().token_file(&token_file).spawn().await;
    let team_a = app.client_with_authorization(&format!("Bearer {TEAM_A_TOKEN}"));
    let ops = app.client_with_authorization(&format!("Bearer {OPS_TOKEN}"));
    Tenants { app, org_a, org_b, team_a, ops }
}

/// Every row the service writes, as text, in a stable order.
async fn every_row(app: &TestApp) -> Vec<String> {
    let mut rows = Vec::new();
    for table in ["drafts", "events", "event_changes"] {
        let sql = format!("SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM {table} t");
        rows.push(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&app.db).await.unwrap());
    }
    rows
}

#[track_caller]
fn assert_not_allowed<T: std::fmt::Debug>(rpc: &str, answer: Result<T, Status>) {
    let status = answer.expect_err(rpc);
    assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
    assert_error(&status, Code::PermissionDenied, "ORGANIZATION_NOT_ALLOWED");
}

#[tokio::test]
async fn every_rpc_for_another_organisation_is_refused_and_nothing_is_read_or_written() {
    let Tenants { app, org_b, team_a, ops, .. } = tenants().await;
    let draft = ops.complete_draft(&org_b).await;
    let unpublished = ops.complete_draft(&org_b).await;
    let event_id = ops.publish(&org_b, &draft.id).await.unwrap().event_id;
    let before = every_row(&app).await;

    assert_not_allowed("CreateDraft", team_a.create_draft(complete_draft_request(&org_b)).await);
    assert_not_allowed("GetDraft", team_a.get_draft(get_draft_request(&org_b, &draft.id)).await);
    let update =
        pb::UpdateDraftRequest { title: "Taken over".into(), ..unpublished.update_request(&["title"]) };
    assert_not_allowed("UpdateDraft", team_a.update_draft(update).await);
    assert_not_allowed(
        "ListDrafts",
        team_a.list_drafts(list_request(&org_b, 0, "", Default::default())).await,
    );
    assert_not_allowed("PublishDraft", team_a.publish(&org_b, &unpublished.id).await);
    assert_not_allowed("GetEvent", team_a.get_event(get_event_request(&org_b, &event_id)).await);
    assert_not_allowed(
        "ListEventChanges",
        team_a.list_event_changes(list_changes_request(&org_b, "", 0)).await,
    );
    assert_not_allowed("WatchEventChanges", team_a.watch_event_changes(&org_b, "").await);

    assert_eq!(every_row(&app).await, before, "a refused call changed rows");
    let draft_now = ops.fetch_draft(&org_b, &unpublished.id).await;
    assert_eq!(draft_now.version, unpublished.version);
    assert_eq!(draft_now.title, unpublished.title);
}

/// Every RPC, for `org`, through `client`: the flow of a draft to its
/// event and the event's changes.
async fn every_rpc_succeeds(client: &TestClient, org: &str) {
    let draft = client.complete_draft(org).await;
    client.fetch_draft(org, &draft.id).await;
    let updated = client
        .update(pb::UpdateDraftRequest { title: "Renamed".into(), ..draft.update_request(&["title"]) })
        .await;
    assert_eq!(updated.version, draft.version + 1);
    let listed = client.list_drafts(list_request(org, 0, "", Default::default())).await.expect("ListDrafts");
    assert!(listed.drafts.iter().any(|d| d.id == draft.id));
    let mut watcher = client.watch(org, "").await;
    let event_id = client.publish(org, &draft.id).await.expect("PublishDraft").event_id;
    client.fetch_event(org, &event_id).await;
    let watched = watcher.take(1).await;
    let listed = client.until_changes(org, 1).await;
    assert_eq!(listed[0].id, watched[0].id);
}

#[tokio::test]
async fn every_rpc_for_its_own_organisation_is_allowed() {
    let Tenants { app: _app, org_a, team_a, .. } = tenants().await;

    every_rpc_succeeds(&team_a, &org_a).await;
}

#[tokio::test]
async fn org_star_reaches_every_organisation() {
    let Tenants { app: _app, org_a, org_b, ops, .. } = tenants().await;

    every_rpc_succeeds(&ops, &org_a).await;
    every_rpc_succeeds(&ops, &org_b).await;
    every_rpc_succeeds(&ops, &new_id()).await;
}

#[tokio::test]
async fn a_token_configured_by_digest_is_accepted_but_the_digest_is_not_a_token() {
    let Tenants { app, org_a, org_b, .. } = tenants().await;
    let hashed = app.client_with_authorization(&format!("Bearer {HASHED_TOKEN}"));
    let digest_as_token =
        app.client_with_authorization(&format!("Bearer sha256:{}", sha256_hex(HASHED_TOKEN)));

    hashed.complete_draft(&org_a).await;
    hashed.complete_draft(&org_b).await;
    assert_not_allowed("CreateDraft", hashed.create_draft(complete_draft_request(&new_id())).await);
    let refused = digest_as_token.create_draft(complete_draft_request(&org_a)).await.unwrap_err();

    assert_error(&refused, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 2);
}

/// `draft-publisher serve` with a token file of these lines: what it said
/// on stderr, once it stopped.
fn serve_with_token_file(lines: &str) -> (Option<i32>, String) {
    let folder = tempfile::tempdir().unwrap();
    let tokens = folder.path().join("tokens");
    std::fs::write(&tokens, lines).unwrap();
    let mut serve = binary::command(UNREACHABLE_DATABASE_URL);
    serve.args(["serve", "--listen-addr", "127.0.0.1:0", "--auth-tokens-file"]).arg(&tokens);
    let output = serve.output().expect("draft-publisher runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_malformed_token_file_line_stops_start_up_naming_the_line() {
    let cases = [
        (
            "sha256:0123 name=short-digest",
            "line 3: sha256: must be followed by 64 lowercase hexadecimal digits",
        ),
        ("secret-1 org=not-a-uuid", "line 3: org= \"not-a-uuid\""),
        ("secret-2 team=billing", "line 3: \"team=billing\" is neither name="),
        ("secret-3 name=a name=b", "line 3: \"name=b\" repeats an attribute"),
    ];
    for (line, expected) in cases {
        let started = std::time::Instant::now();
        let (code, stderr) = serve_with_token_file(&format!("# tokens\nfine name=ok\n{line}\n"));

        assert_eq!(code, Some(1), "{line}: {stderr}");
        assert!(stderr.contains(expected), "{line}: {stderr}");
        assert!(!stderr.contains("secret-"), "{line}: the error shows the token: {stderr}");
        // Refused before the (unreachable) database is tried.
        assert!(started.elapsed() < Duration::from_secs(2), "{line}: took {:?}", started.elapsed());
    }
}
