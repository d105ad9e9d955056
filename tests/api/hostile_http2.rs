//! Hostile HTTP/2 clients (issue 14): each attack played with a raw HTTP/2
//! client against the real server while a victim calls on a connection of
//! its own. The server stays up, the victim keeps being served, and the
//! attacker is refused, limited or disconnected.

use std::time::Duration;

use draft_publisher::server::ServerSettings;
use futures::future::join_all;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};
use tonic::codegen::http;

use crate::support::{
    health::ServingStatus,
    http2::{Attacker, GET_DRAFT, PUBLISH_DRAFT, Victim, grpc_message, grpc_status, raw},
    metrics::{sample, scrape_text},
    *,
};

const DEADLINE_EXCEEDED: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_send_their_message_do_not_lock_out_other_callers() {
    let app = TestApp::builder()
        .max_concurrent_calls(16)
        .server_settings(|s| s.request_message_timeout = Duration::from_millis(800))
        .spawn()
        .await;
    let victim = Victim::start(&app).await;

    // Three connections, each with as many streams as the server allows:
    // HEADERS, then nothing. Far more than the 16 calls allowed in flight.
    let mut attackers = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut attacker = Attacker::connect(app.addr, &h2::client::Builder::new()).await;
        let allowed = attacker.send.current_max_send_streams();
        assert_eq!(allowed, ServerSettings::default().http2.max_concurrent_streams as usize);
        for _ in 0..allowed {
            streams.push(attacker.headers_only(app.addr, GET_DRAFT).await);
        }
        attackers.push(attacker);
    }
    let (heads, _bodies): (Vec<_>, Vec<_>) = streams.into_iter().unzip();
    let answers = tokio::time::timeout(Duration::from_secs(5), join_all(heads))
        .await
        .expect("every body-less stream answered");
    let report = victim.stop().await;

    report.assert_served();
    for answer in answers {
        let answer = answer.expect("an answer, not a reset");
        assert_eq!(grpc_status(&answer), Some(DEADLINE_EXCEEDED), "{answer:?}");
    }
}

/// MadeYouReset (CVE-2025-8671): frames that are each valid on their own
/// make the server reset stream after stream for the client's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_provoking_stream_resets_is_disconnected() {
    let app =
        TestApp::builder().server_settings(|s| s.http2.max_local_error_reset_streams = 200).spawn().await;
    let victim = Victim::start(&app).await;
    let headers = raw::grpc_headers(&app.addr.to_string(), GET_DRAFT);

    let (frames, sent) =
        open_streams_until_closed(app.addr, &headers, 10_000, raw::overflowing_window_update).await;
    let report = victim.stop().await;

    report.assert_served();
    let go_away = frames.iter().find(|f| f.kind == raw::GOAWAY).expect("a GOAWAY");
    assert_eq!(go_away.error_code(), raw::ENHANCE_YOUR_CALM, "after {sent} streams");
    assert!(sent < 10_000, "the server read all {sent} streams");
    let metrics = scrape_text(app.metrics_addr).await;
    assert!(!metrics.contains("code=\"INTERNAL\""), "client errors counted as INTERNAL:\n{metrics}");
}

/// MadeYouReset played as an attacker would: reconnecting as soon as it is
/// disconnected, for seconds, against the default limits. Every connection
/// ends in GOAWAY ENHANCE_YOUR_CALM, and the victim is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnecting_to_provoke_resets_is_disconnected_every_time() {
    let app = TestApp::spawn().await;
    let victim = Victim::start(&app).await;
    let headers = raw::grpc_headers(&app.addr.to_string(), GET_DRAFT);
    let rss_before = memory_mib("VmRSS");

    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut connections = 0;
    while tokio::time::Instant::now() < until {
        let (frames, sent) =
            open_streams_until_closed(app.addr, &headers, 10_000, raw::overflowing_window_update).await;
        let go_away = frames.iter().find(|f| f.kind == raw::GOAWAY).expect("a GOAWAY");
        assert_eq!(go_away.error_code(), raw::ENHANCE_YOUR_CALM, "connection {connections}, {sent} streams");
        connections += 1;
    }
    let report = victim.stop().await;
    // Server, attacker and victim share this process: an upper bound.
    let (rss_after, peak) = (memory_mib("VmRSS"), memory_mib("VmHWM"));
    eprintln!(
        "victim during {connections} MadeYouReset connections: {report:?}; \
         RSS {rss_before} -> {rss_after} MiB, peak {peak} MiB"
    );

    report.assert_served();
    assert!(connections > 1, "the attacker reconnected");
    assert!(rss_after < rss_before + 32, "RSS {rss_before} -> {rss_after} MiB");
    let metrics = scrape_text(app.metrics_addr).await;
    assert!(!metrics.contains("code=\"INTERNAL\""), "client errors counted as INTERNAL:\n{metrics}");
}

/// Rapid reset (CVE-2023-44487): streams opened and cancelled at once, so
/// that the server starts work the client never waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resetting_streams_as_fast_as_it_opens_them_is_disconnected() {
    let app = TestApp::spawn().await;
    let victim = Victim::start(&app).await;
    let headers = raw::grpc_headers(&app.addr.to_string(), GET_DRAFT);

    let (frames, sent) = open_streams_until_closed(app.addr, &headers, 100_000, |stream| {
        raw::frame(raw::RST_STREAM, 0, stream, &raw::CANCEL.to_be_bytes())
    })
    .await;
    let report = victim.stop().await;

    report.assert_served();
    let go_away = frames.iter().find(|f| f.kind == raw::GOAWAY).expect("a GOAWAY");
    assert_eq!(go_away.error_code(), raw::ENHANCE_YOUR_CALM, "after {sent} streams");
    assert!(sent < 100_000, "the server read all {sent} streams");
}

/// A call in flight whose stream the client breaks is not a call the
/// service failed: it is counted apart, never as INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_stream_the_client_breaks_is_counted_apart() {
    let app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let holder = app.hold_draft(&draft.id).await;
    let headers = raw::grpc_headers(&app.addr.to_string(), PUBLISH_DRAFT);
    let (mut reader, mut writer) = raw_connection(app.addr).await;

    let mut call = raw::frame(raw::HEADERS, raw::END_HEADERS, 1, &headers);
    call.extend(raw::frame(raw::DATA, raw::END_STREAM, 1, &grpc_message(&draft.publish_request())));
    writer.write_all(&call).await.unwrap();
    app.until_calls_wait_on_locks(1).await;
    writer.write_all(&raw::overflowing_window_update(1)).await.unwrap();
    let reset = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = raw::read_frame(&mut reader).await.expect("the connection stays open");
            if frame.kind == raw::RST_STREAM && frame.stream == 1 {
                return frame;
            }
        }
    })
    .await
    .expect("the server reset the stream");
    holder.commit().await.unwrap();

    assert_eq!(reset.error_code(), raw::FLOW_CONTROL_ERROR);
    until("the broken call counted", Duration::from_secs(5), || async {
        let metrics = scrape_text(app.metrics_addr).await;
        assert!(!metrics.contains("code=\"INTERNAL\""), "counted as INTERNAL:\n{metrics}");
        sample(&metrics, "draftpublisher_http2_stream_errors_total", &[("reason", "STREAM_RESET")])
            == Some(1.0)
    })
    .await;
    // The publish behind the call was not cut half-way.
    let again = app.publish(&draft.organization_id, &draft.id).await.expect("publish answers");
    assert!(again.already_published);
}

/// A connection that has done the HTTP/2 handshake, split.
/// Opens up to `streams` streams on a raw connection, each HEADERS followed
/// by `then(stream)`, until the server stops reading; returns the frames the
/// server sent until it closed the connection (within 5 s) and the streams
/// sent.
async fn open_streams_until_closed(
    addr: std::net::SocketAddr,
    headers: &[u8],
    streams: u32,
    then: impl Fn(u32) -> Vec<u8>,
) -> (Vec<raw::Frame>, u32) {
    let (mut reader, mut writer) = raw_connection(addr).await;
    let frames = tokio::spawn(async move {
        let mut frames = Vec::new();
        while let Some(frame) = raw::read_frame(&mut reader).await {
            frames.push(frame);
        }
        frames
    });
    let mut sent = 0;
    for stream in (1..streams * 2).step_by(2) {
        let mut attack = raw::frame(raw::HEADERS, raw::END_HEADERS, stream, headers);
        attack.extend(then(stream));
        if writer.write_all(&attack).await.is_err() {
            break;
        }
        sent += 1;
    }
    let frames = tokio::time::timeout(Duration::from_secs(5), frames)
        .await
        .expect("the server closed the connection")
        .unwrap();
    (frames, sent)
}

async fn raw_connection(addr: std::net::SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
    let (reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    writer.write_all(&raw::handshake()).await.unwrap();
    (reader, writer)
}

/// Window starvation: the client never opens its receive window, so no
/// answer can be sent and every stream stays open, while the client answers
/// PINGs. The connection may hold only so many streams, and is closed once
/// an answer has waited on it too long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_answers_stall_on_a_closed_window_is_closed() {
    let app = TestApp::builder()
        .server_settings(|s| {
            s.http2.max_concurrent_streams = 20;
            s.http2.stalled_answer_timeout = Duration::from_millis(500);
        })
        .spawn()
        .await;
    let victim = Victim::start(&app).await;
    // A stream that waits on the service, not on the window, is not stalled.
    let mut watch = app.watch_health("").await;
    watch.until(ServingStatus::Serving, Duration::from_secs(5)).await;

    let (mut attacker, _answers) = starve(&app, 20).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut attacker.connection).await;
    let report = victim.stop().await;

    assert!(closed.is_ok(), "the starved connection was not closed");
    assert!(watch.open_throughout(Duration::from_millis(700)).await, "an idle Watch was taken for stalled");
    report.assert_served();
}

/// Many starving connections, each within its own limits: beyond the
/// answers the server lets wait at once, the connection with the most goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_stalled_answers_close_the_connection_holding_most() {
    let app = TestApp::builder()
        .server_settings(|s| {
            s.http2.max_concurrent_streams = 20;
            s.http2.max_stalled_answers = 30;
        })
        .spawn()
        .await;
    let victim = Victim::start(&app).await;

    let (mut first, _first_answers) = starve(&app, 20).await;
    let (mut second, _second_answers) = starve(&app, 10).await;
    let first_closed = tokio::time::timeout(Duration::from_secs(5), &mut first.connection).await;
    let report = victim.stop().await;

    assert!(first_closed.is_ok(), "31 answers waited and the connection with 20 stayed");
    let second_closed = tokio::time::timeout(Duration::from_millis(300), &mut second.connection).await;
    assert!(second_closed.is_err(), "the connection with 10, under the limit by then, was closed too");
    report.assert_served();
}

/// Whatever it holds, a connection ends at its maximum age plus grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ends_at_its_age_plus_grace_whatever_it_holds() {
    let app = TestApp::builder()
        .server_settings(|s| {
            s.http2.max_connection_age = Duration::from_millis(1500);
            s.http2.max_connection_age_grace = Duration::from_millis(500);
        })
        .spawn()
        .await;
    let victim = Victim::start(&app).await;

    let (mut attacker, _answers) = starve(&app, 20).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut attacker.connection).await;
    let report = victim.stop().await;

    assert!(closed.is_ok(), "the starved connection was not closed at its age and grace");
    // The victim's own connection aged as well, and moved on unharmed.
    report.assert_served();
}

/// A connection that never opens its receive window, with `streams` calls
/// whose answers' heads came and whose bodies cannot. Dropping an answer
/// would reset its stream: they are returned with the connection.
async fn starve(app: &TestApp, streams: usize) -> (Attacker, Vec<http::Response<h2::RecvStream>>) {
    let draft = app.complete_draft(&new_id()).await;
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(0);
    let mut attacker = Attacker::connect(app.addr, &builder).await;
    let mut heads = Vec::new();
    for _ in 0..streams {
        heads.push(attacker.call(app.addr, GET_DRAFT, grpc_message(&draft.get_request())).await);
    }
    let answered = tokio::time::timeout(Duration::from_secs(2), join_all(heads)).await.expect("heads");
    let answers: Vec<_> = answered.into_iter().map(|head| head.expect("an answer's head")).collect();
    for answer in &answers {
        assert_eq!(grpc_status(answer), None, "not trailers-only: the draft follows in DATA: {answer:?}");
    }
    (attacker, answers)
}

/// Connections that never send the HTTP/2 preface, only part of it, or
/// never acknowledge the server's SETTINGS: all hold a file descriptor and
/// do nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_complete_the_handshake_are_closed() {
    let app = TestApp::builder()
        .server_settings(|s| s.http2.handshake_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let victim = Victim::start(&app).await;

    let mut silent = Vec::new();
    for i in 0..300 {
        let mut connection = TcpStream::connect(app.addr).await.unwrap();
        match i % 3 {
            0 => {}
            1 => connection.write_all(&raw::PREFACE[..16]).await.unwrap(),
            _ => {
                connection.write_all(raw::PREFACE).await.unwrap();
                connection.write_all(&raw::frame(raw::SETTINGS, 0, 0, &[])).await.unwrap();
            }
        }
        silent.push(connection);
    }
    // A client that does the handshake stays connected.
    let (mut polite, _writer) = raw_connection(app.addr).await;
    let closed = join_all(silent.into_iter().map(|mut connection| async move {
        let mut byte = [0u8; 64];
        // The server's SETTINGS may come first; then the end of the stream.
        tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match connection.read(&mut byte).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }));
    let closed = closed.await;
    let report = victim.stop().await;

    assert!(
        closed.iter().all(|&c| c),
        "{} of 300 silent connections still open",
        closed.iter().filter(|&&c| !c).count()
    );
    // Twice the handshake timeout after it connected, it is still open.
    let polite_closed = tokio::time::timeout(Duration::from_millis(600), async {
        while raw::read_frame(&mut polite).await.is_some() {}
    });
    assert!(polite_closed.await.is_err(), "the connection that did the handshake was closed");
    report.assert_served();
}

/// A `VmRSS` or `VmHWM` line of this process's status, in MiB.
fn memory_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB");
    kib / 1024
}
