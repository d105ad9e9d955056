//! The server's limits: request timeout and client deadlines, concurrency
//! limit with load shedding, and HTTP/2 keepalive. (The message size limit
//! is in `server`.)

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;

use crate::support::{health, metrics, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_the_request_timeout_is_deadline_exceeded_and_its_publish_still_completes() {
    let app = TestApp::builder().request_timeout(Duration::from_millis(300)).spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;

    let status = app.publish(&draft.organization_id, &draft.id).await.unwrap_err();

    assert_error(&status, Code::DeadlineExceeded, "REQUEST_TIMEOUT");
    assert!(status.message().contains("300ms"), "{status:?}");
    // The publish was not cut half-way: still waiting for the row, it
    // completes once the row is free.
    app.until_calls_wait_on_locks(1).await;
    holder.commit().await.unwrap();
    let again = app.publish(&draft.organization_id, &draft.id).await.expect("publish answers");
    assert!(again.already_published, "the timed-out call published the draft");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_deadline_that_runs_out_is_deadline_exceeded_counted_and_its_publish_completes() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;
    let mut request = tonic::Request::new(draft.publish_request());
    request.set_timeout(Duration::from_millis(300));

    let status = app.publish_draft(request).await.unwrap_err();

    // The server's answer, not the client's own timer (which says CANCELLED).
    assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    let text = metrics::scrape_text(app.metrics_addr).await;
    let publish = format!("/{}/PublishDraft", health::SERVICE);
    let labels = [("method", publish.as_str()), ("code", "DEADLINE_EXCEEDED")];
    metrics::assert_sample(&text, "draftpublisher_grpc_calls_total", &labels, 1.0);
    app.until_calls_wait_on_locks(1).await;
    holder.commit().await.unwrap();
    let again = app.publish(&draft.organization_id, &draft.id).await.expect("publish answers");
    assert!(again.already_published, "the call past its deadline published the draft");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_limit_are_shed_at_once() {
    let app = TestApp::builder().max_concurrent_calls(1).spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;
    let in_flight = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;

    // The only permit is held until the holder lets go: a queue would make
    // these calls wait for it; shedding answers them now.
    let flood: Vec<_> = (0..20)
        .map(|_| {
            let (client, request) = (app.client(), draft.get_request());
            tokio::spawn(async move { client.get_draft(request).await })
        })
        .collect();
    for call in flood {
        let status = call.await.unwrap().unwrap_err();
        assert_error(&status, Code::Unavailable, "OVERLOADED");
    }
    health::check(app.channel().await, "").await.expect("health is never shed");

    holder.commit().await.unwrap();
    in_flight.await.unwrap().expect("the call within the limit finishes");
    app.get_draft(draft.get_request()).await.expect("served again once calls finished");
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;

/// Reads HTTP/2 frames until the server closes the connection, answering
/// nothing; returns the (type, flags) of each frame.
async fn frames_until_closed(mut connection: TcpStream) -> Vec<(u8, u8)> {
    let mut frames = Vec::new();
    let mut header = [0u8; 9];
    loop {
        if connection.read_exact(&mut header).await.is_err() {
            return frames;
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if connection.read_exact(&mut payload).await.is_err() {
            return frames;
        }
        frames.push((header[3], header[4]));
    }
}

#[tokio::test]
async fn a_peer_that_ignores_keepalive_pings_is_disconnected() {
    let app = TestApp::builder()
        .http2_keepalive(Duration::from_millis(200), Duration::from_millis(200))
        .spawn()
        .await;

    let mut connection = TcpStream::connect(app.addr).await.unwrap();
    connection.write_all(HTTP2_PREFACE).await.unwrap();
    connection.write_all(&[0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]).await.unwrap();
    let frames = tokio::time::timeout(Duration::from_secs(60), frames_until_closed(connection))
        .await
        .expect("the server closed the silent connection");

    assert!(
        frames.iter().any(|&(kind, flags)| kind == FRAME_PING && flags & FLAG_ACK == 0),
        "no keepalive PING before the connection closed: {frames:?}"
    );
    // A live client answers the PINGs and keeps being served.
    app.complete_draft(&new_id()).await;
}
