//! Structured logs: one span per call with its caller (by label), ids,
//! outcome, status code and latency, as JSON lines; bearer tokens never
//! appear.
//!
//! The subscriber is the test thread's own default, and the server runs on
//! the test's single-threaded runtime, so every line of these calls is
//! captured here and no other test's lines are.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use serde_json::Value;

use crate::support::{binary, *};

const TOKEN: &str = "never-log-me-5f1c";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The span of each `call finished` line.
    fn finished_calls(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
            .filter(|line| line["fields"]["message"] == "call finished")
            .map(|line| line["span"].clone())
            .collect()
    }
}

#[tokio::test]
async fn each_call_logs_one_json_span_with_caller_ids_outcome_code_and_latency_but_no_token() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let org = new_id();
    let app = TestApp::builder().token_file(&format!("{TOKEN} name=billing org={org}\n")).spawn().await;
    let authorized = app.client_with_authorization(&format!("Bearer {TOKEN}"));

    let draft = authorized.complete_draft(&org).await;
    let published = authorized.publish(&org, &draft.id).await.unwrap();
    app.publish(&org, &draft.id).await.unwrap_err();
    authorized.create_draft(complete_draft_request(&new_id())).await.unwrap_err();

    let calls = logs.finished_calls();
    assert_eq!(calls.len(), 4, "{}", logs.text());
    let create = &calls[0];
    assert_eq!(create["method"], "/draftpublisher.v1.DraftPublisher/CreateDraft");
    assert_eq!(create["organization_id"], org.as_str());
    assert_eq!(create["draft_id"], draft.id.as_str());
    assert_eq!(create["code"], "OK");
    assert_eq!(create["caller"], "billing");
    let publish = &calls[1];
    assert_eq!(publish["method"], "/draftpublisher.v1.DraftPublisher/PublishDraft");
    assert_eq!(publish["organization_id"], org.as_str());
    assert_eq!(publish["draft_id"], draft.id.as_str());
    assert_eq!(publish["event_id"], published.event_id.as_str());
    assert_eq!(publish["outcome"], "created");
    assert_eq!(publish["code"], "OK");
    assert!(publish["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{publish}");
    assert_eq!(calls[2]["code"], "UNAUTHENTICATED");
    assert_eq!(calls[2]["caller"], Value::Null, "an unauthenticated call has no caller");
    assert_eq!(calls[3]["code"], "PERMISSION_DENIED");
    assert_eq!(calls[3]["caller"], "billing");
    assert!(!logs.text().contains(TOKEN), "a token was logged");
}

#[test]
fn text_logs_written_to_a_pipe_carry_no_colour_codes() {
    // Without a database URL the binary logs its error and exits at once.
    let output = binary::command("")
        .env_remove("DATABASE_URL")
        .args(["--log-format", "text", "audit"])
        .output()
        .expect("draft-publisher runs");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR"), "no error line was logged: {stderr}");
    assert!(!output.stderr.contains(&0x1b), "ANSI escape codes in piped logs: {stderr:?}");
}
