//! HTTP/2 as a hostile peer speaks it, and the victim it tries to harm.
//!
//! - [`Attacker`]: a connection of the `h2` crate, which sends well-formed
//!   frames in orders a gRPC client never would (HEADERS and no message,
//!   a receive window never opened).
//! - [`raw`]: frames `h2` refuses to send (a window update that overflows).
//! - [`Victim`]: a well-behaved caller on a connection of its own, each call
//!   timed, for as long as an attack lasts.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use draft_publisher::proto::v1 as pb;
use prost::Message;
use tokio::{net::TcpStream, sync::watch, task::JoinHandle};
use tonic::codegen::{Bytes, http};

use crate::support::{TestApp, requests::*, wait::until};

pub const GET_DRAFT: &str = "/draftpublisher.v1.DraftPublisher/GetDraft";
pub const PUBLISH_DRAFT: &str = "/draftpublisher.v1.DraftPublisher/PublishDraft";

/// `message` as a gRPC message: uncompressed, length-prefixed.
pub fn grpc_message(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + encoded.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&encoded);
    framed.into()
}

/// The head of a gRPC call of `path`.
pub fn grpc_request(addr: SocketAddr, path: &str) -> http::Request<()> {
    http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// An HTTP/2 connection of the attacker's, driven on a task of its own.
pub struct Attacker {
    pub send: h2::client::SendRequest<Bytes>,
    /// Ends when the server closes the connection.
    pub connection: JoinHandle<Result<(), h2::Error>>,
}

impl Attacker {
    /// Connects to `addr` with `builder`'s settings and waits for the
    /// server's SETTINGS (its stream limit).
    pub async fn connect(addr: SocketAddr, builder: &h2::client::Builder) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, connection) = builder.handshake(tcp).await.expect("HTTP/2 handshake");
        let connection = tokio::spawn(connection);
        let attacker = Self { send, connection };
        // h2 assumes no stream limit until the server's SETTINGS say otherwise.
        until("the server's SETTINGS", Duration::from_secs(2), || async {
            attacker.send.current_max_send_streams() != usize::MAX
        })
        .await;
        attacker
    }

    /// Opens a stream of `path` with HEADERS only: no message, not ended.
    pub async fn headers_only(
        &mut self,
        addr: SocketAddr,
        path: &str,
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        self.send.clone().ready().await.expect("stream capacity");
        self.send.send_request(grpc_request(addr, path), false).expect("HEADERS sent")
    }

    /// A whole call of `path` with `message`; the answer's head and body
    /// are left to the caller.
    pub async fn call(&mut self, addr: SocketAddr, path: &str, message: Bytes) -> h2::client::ResponseFuture {
        self.send.clone().ready().await.expect("stream capacity");
        let (response, mut body) =
            self.send.send_request(grpc_request(addr, path), false).expect("HEADERS sent");
        body.send_data(message, true).expect("message sent");
        response
    }
}

/// The `grpc-status` of a trailers-only answer.
pub fn grpc_status<B>(answer: &http::Response<B>) -> Option<i32> {
    answer.headers().get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Hand-made HTTP/2 frames (RFC 9113 §4.1), for what `h2` will not send.
pub mod raw {
    use tokio::io::{AsyncRead, AsyncReadExt};

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const CANCEL: u32 = 0x8;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;

    /// A frame as read: type, stream and payload.
    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// The error code of a RST_STREAM or GOAWAY.
        pub fn error_code(&self) -> u32 {
            let at = if self.kind == GOAWAY { 4 } else { 0 };
            u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
        }
    }

    /// The client's side of the HTTP/2 handshake: the preface, empty
    /// SETTINGS, and the acknowledgement of the server's SETTINGS.
    pub fn handshake() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[]));
        bytes.extend(frame(SETTINGS, ACK, 0, &[]));
        bytes
    }

    /// The next frame, or `None` once the connection is closed.
    pub async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> Option<Frame> {
        let mut header = [0u8; 9];
        reader.read_exact(&mut header).await.ok()?;
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        reader.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff;
        Some(Frame { kind: header[3], stream, payload })
    }

    /// A window increment that overflows any stream's send window: the
    /// server must reset the stream (FLOW_CONTROL_ERROR).
    pub fn overflowing_window_update(stream: u32) -> Vec<u8> {
        frame(WINDOW_UPDATE, 0, stream, &0x7fff_ffffu32.to_be_bytes())
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// A string literal of HPACK (RFC 7541 §5.2), not Huffman-coded; short.
    fn literal(text: &str, block: &mut Vec<u8>) {
        block.push(u8::try_from(text.len()).expect("under 127 bytes"));
        block.extend_from_slice(text.as_bytes());
    }

    /// The HPACK block of a gRPC call's head: `:method POST`, `:scheme http`
    /// from the static table, the rest literal without indexing.
    pub fn grpc_headers(authority: &str, path: &str) -> Vec<u8> {
        let mut block = vec![0x83, 0x86, 0x04];
        literal(path, &mut block);
        block.push(0x01);
        literal(authority, &mut block);
        block.extend_from_slice(&[0x0f, 0x10]); // content-type: static index 31
        literal("application/grpc", &mut block);
        block.push(0x00);
        literal("te", &mut block);
        literal("trailers", &mut block);
        block
    }
}

/// What the victim saw.
#[derive(Debug)]
pub struct VictimReport {
    pub ok: usize,
    pub failed: Vec<String>,
    pub slowest_call: Duration,
    /// The 99th percentile of the answered calls' latencies.
    pub p99: Duration,
    /// The longest time without an answered call.
    pub longest_gap: Duration,
}

impl VictimReport {
    /// At least 99% of the calls answered, none gap over 1 s.
    #[track_caller]
    pub fn assert_served(&self) {
        let total = self.ok + self.failed.len();
        assert!(self.ok >= 10, "the victim was hardly served: {self:?}");
        assert!(self.failed.len() * 100 <= total, "over 1% of the victim's calls failed: {self:?}");
        assert!(self.longest_gap < Duration::from_secs(1), "the victim went unserved: {self:?}");
    }
}

/// Calls the victim makes at least, however short the attack.
const VICTIM_CALLS: usize = 20;

/// A well-behaved caller on a connection of its own, calling GetDraft in a
/// loop until stopped (and at least [`VICTIM_CALLS`] times).
pub struct Victim {
    stop: watch::Sender<bool>,
    task: JoinHandle<VictimReport>,
}

impl Victim {
    pub async fn start(app: &TestApp) -> Self {
        let client = app.connect().await;
        let draft = client.complete_draft(&new_id()).await;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut report = VictimReport {
                ok: 0,
                failed: Vec::new(),
                slowest_call: Duration::ZERO,
                p99: Duration::ZERO,
                longest_gap: Duration::ZERO,
            };
            let mut latencies = Vec::new();
            let mut last_answer = Instant::now();
            while !*stopped.borrow() || report.ok + report.failed.len() < VICTIM_CALLS {
                let started = Instant::now();
                let answer =
                    tokio::time::timeout(Duration::from_secs(2), client.get_draft(draft.get_request())).await;
                report.slowest_call = report.slowest_call.max(started.elapsed());
                match answer {
                    Ok(Ok(_)) => {
                        report.ok += 1;
                        latencies.push(started.elapsed());
                        report.longest_gap = report.longest_gap.max(last_answer.elapsed());
                        last_answer = Instant::now();
                    }
                    Ok(Err(status)) => {
                        report.failed.push(format!("{:?}: {}", status.code(), status.message()))
                    }
                    Err(_) => report.failed.push("no answer within 2 s".to_owned()),
                }
            }
            report.longest_gap = report.longest_gap.max(last_answer.elapsed());
            latencies.sort_unstable();
            report.p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
            report
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> VictimReport {
        let _ = self.stop.send(true);
        self.task.await.expect("the victim did not panic")
    }
}
