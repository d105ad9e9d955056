//! Each accepted connection, guarded below HTTP/2 and TLS: it must complete
//! its handshake within the handshake timeout; it is closed when an answer
//! has waited on the peer's flow-control window past the stalled-answer
//! timeout (see `stalls`), and at its maximum age plus grace, with whatever
//! it still holds. What counts as done with the handshake, in plaintext
//! and under TLS, is `handshake`'s to say.
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

use super::{
    handshake::Handshake,
    stalls::{Registration, Registry},
};

/// The deadlines of every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionDeadlines {
    /// From accept to the handshake done.
    pub handshake_timeout: Duration,
    /// From accept to the connection being closed regardless.
    pub max_lifetime: Duration,
    /// How long an answer may wait on the peer's flow-control window.
    pub stalled_answer_timeout: Duration,
    /// Whether connections speak HTTP/2 in the clear, or over TLS.
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
        let handshake = if deadlines.plaintext { Handshake::plaintext() } else { Handshake::tls() };
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

/// What tonic puts in each request's extensions stays the plain
/// connection's (`remote_addr`, peer certificates).
impl<IO: Connected> Connected for GuardedIo<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
