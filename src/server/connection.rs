//! Each accepted connection, guarded below HTTP/2 and TLS: it must complete
//! its handshake within the handshake timeout; it is closed when an answer
//! has waited on the peer's flow-control window past the stalled-answer
//! timeout (see `stalls`), and at its maximum age plus grace, with whatever
//! it still holds.
//!
//! In plaintext the handshake is HTTP/2's: the client preface, then the
//! client's acknowledgement of the server's SETTINGS, which every client
//! sends at once (RFC 9113 §6.5.3) and a peer that merely holds connections
//! open does not. Under TLS the bytes are opaque here: the first ones (the
//! ClientHello) must arrive in time, and the TLS handshake has a timeout of
//! its own.
//!
//! The GOAWAY at the maximum age is tonic's; closing at age + grace is done
//! here because tonic 0.14, given a grace, skips that GOAWAY.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep, sleep_until},
};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

use super::stalls::{Registration, Registry};

/// The HTTP/2 client preface (`PRI * HTTP/2.0…`) is 24 bytes; a TLS
/// ClientHello is longer.
const PREFACE_BYTES: usize = 24;
const FRAME_HEADER_BYTES: usize = 9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;

/// The deadlines of every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionDeadlines {
    /// From accept to the handshake done.
    pub handshake_timeout: Duration,
    /// From accept to the connection being closed regardless.
    pub max_lifetime: Duration,
    /// How long an answer may wait on the peer's flow-control window.
    pub stalled_answer_timeout: Duration,
    /// Whether connections speak HTTP/2 in the clear (no TLS), so that the
    /// HTTP/2 handshake can be followed.
    pub plaintext: bool,
}

/// `incoming`'s connections, each guarded by `deadlines`, their answers
/// watched in `answers`.
pub fn guard<S>(
    incoming: S,
    deadlines: ConnectionDeadlines,
    answers: Registry,
) -> impl Stream<Item = io::Result<GuardedIo<TcpStream>>>
where
    S: Stream<Item = io::Result<TcpStream>>,
{
    incoming.map(move |accepted| {
        accepted.map(|io| {
            let answers = io.peer_addr().ok().map(|peer| answers.register(peer));
            GuardedIo::new(io, deadlines, answers)
        })
    })
}

/// The answers of a connection, and when to look at them next.
struct StallCheck {
    answers: Registration,
    timeout: Duration,
    next: Pin<Box<Sleep>>,
}

impl StallCheck {
    /// Often enough to close a starved connection within 1.25 timeouts.
    fn period(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(10))
    }

    /// Whether an answer has waited too long, or the connection must go
    /// because too many answers wait; registers for the next look.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.answers.stalls.evicted(cx.waker()) {
            return true;
        }
        while self.next.as_mut().poll(cx).is_ready() {
            if self.answers.stalls.oldest().is_some_and(|since| since.elapsed() >= self.timeout) {
                return true;
            }
            let next = Instant::now() + self.period();
            self.next.as_mut().reset(next);
        }
        false
    }
}

/// A connection that fails its reads once a deadline has passed, which
/// makes the HTTP/2 (or TLS) layer above drop it.
pub struct GuardedIo<IO> {
    io: IO,
    /// Until the handshake is done.
    handshake: Option<(Handshake, Pin<Box<Sleep>>)>,
    stalls: Option<StallCheck>,
    end_of_life: Pin<Box<Sleep>>,
}

impl<IO> GuardedIo<IO> {
    fn new(io: IO, deadlines: ConnectionDeadlines, answers: Option<Registration>) -> Self {
        let accepted = Instant::now();
        let handshake = Handshake {
            preface_left: PREFACE_BYTES,
            follow_frames: deadlines.plaintext,
            ..Handshake::default()
        };
        let timeout = deadlines.stalled_answer_timeout;
        let stalls = answers.map(|answers| StallCheck {
            answers,
            timeout,
            next: Box::pin(sleep_until(accepted + timeout)),
        });
        Self {
            io,
            handshake: Some((handshake, Box::pin(sleep_until(accepted + deadlines.handshake_timeout)))),
            stalls,
            end_of_life: Box::pin(sleep_until(accepted + deadlines.max_lifetime)),
        }
    }

    /// An error once a deadline has passed; polling registers for both.
    fn check_deadlines(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.end_of_life.as_mut().poll(cx).is_ready() {
            tracing::debug!("closing a connection past its maximum age and grace");
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connection past its maximum age"));
        }
        if let Some((_, timeout)) = &mut self.handshake
            && timeout.as_mut().poll(cx).is_ready()
        {
            tracing::debug!("closing a connection that did not complete its handshake in time");
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no handshake within the timeout"));
        }
        if let Some(stalls) = &mut self.stalls
            && stalls.stalled(cx)
        {
            tracing::debug!("closing a connection whose answers wait on its flow-control window");
            return Err(io::Error::new(io::ErrorKind::TimedOut, "an answer stalled on flow control"));
        }
        Ok(())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for GuardedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_deadlines(cx)?;
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if let Some((handshake, _)) = &mut self.handshake
            && handshake.read(&buf.filled()[before..])
        {
            self.handshake = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for GuardedIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How far a connection is through its handshake, from the bytes it sent.
#[derive(Debug, Default)]
struct Handshake {
    preface_left: usize,
    /// Whether to look for the SETTINGS acknowledgement after the preface.
    follow_frames: bool,
    header: [u8; FRAME_HEADER_BYTES],
    header_read: usize,
    /// Payload bytes of the current frame still to skip.
    payload_left: usize,
}

impl Handshake {
    /// Takes the next bytes read; whether the handshake is done.
    fn read(&mut self, mut bytes: &[u8]) -> bool {
        let preface = self.preface_left.min(bytes.len());
        self.preface_left -= preface;
        bytes = &bytes[preface..];
        if self.preface_left > 0 {
            return false;
        }
        if !self.follow_frames {
            return true;
        }
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skipped = self.payload_left.min(bytes.len());
                self.payload_left -= skipped;
                bytes = &bytes[skipped..];
                continue;
            }
            let taken = (FRAME_HEADER_BYTES - self.header_read).min(bytes.len());
            self.header[self.header_read..self.header_read + taken].copy_from_slice(&bytes[..taken]);
            self.header_read += taken;
            bytes = &bytes[taken..];
            if self.header_read == FRAME_HEADER_BYTES {
                let [l0, l1, l2, kind, flags, ..] = self.header;
                if kind == SETTINGS && flags & ACK != 0 {
                    return true;
                }
                self.payload_left = u32::from_be_bytes([0, l0, l1, l2]) as usize;
                self.header_read = 0;
            }
        }
        false
    }
}

/// What tonic puts in each request's extensions stays the plain
/// connection's (`remote_addr`, peer certificates).
impl<IO: Connected> Connected for GuardedIo<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn plaintext() -> Handshake {
        Handshake { preface_left: PREFACE_BYTES, follow_frames: true, ..Handshake::default() }
    }

    #[test]
    fn plaintext_handshake_ends_with_the_settings_acknowledgement_in_any_split() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend([0, 0, 6, SETTINGS, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]); // SETTINGS
        bytes.extend([0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]); // WINDOW_UPDATE
        let ack = [0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0];
        for split in 0..bytes.len() {
            let mut handshake = plaintext();
            assert!(!handshake.read(&bytes[..split]));
            assert!(!handshake.read(&bytes[split..]), "done without the acknowledgement");
            assert!(!handshake.read(&ack[..5]));
            assert!(handshake.read(&ack[5..]));
        }
    }

    #[test]
    fn under_tls_the_first_bytes_are_enough() {
        let mut handshake = Handshake { preface_left: PREFACE_BYTES, ..Handshake::default() };
        assert!(!handshake.read(&[0x16; 23]));
        assert!(handshake.read(&[0x16]));
    }
}
