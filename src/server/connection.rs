//! Each accepted connection, guarded below HTTP/2 and TLS: it must deliver
//! its first bytes (the HTTP/2 preface, or a TLS ClientHello) within the
//! handshake timeout, and it is closed at its maximum age plus grace, with
//! whatever it still holds (streams stuck on a flow-control window the peer
//! never opens, say).
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
    time::{Instant, Sleep, sleep_until},
};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// The HTTP/2 client preface (`PRI * HTTP/2.0…`) is 24 bytes; a TLS
/// ClientHello is longer.
const FIRST_BYTES: usize = 24;

/// The deadlines of every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionDeadlines {
    /// From accept to the first bytes read.
    pub handshake_timeout: Duration,
    /// From accept to the connection being closed regardless.
    pub max_lifetime: Duration,
}

/// `incoming`'s connections, each guarded by `deadlines`.
pub fn guard<S, IO>(
    incoming: S,
    deadlines: ConnectionDeadlines,
) -> impl Stream<Item = io::Result<GuardedIo<IO>>>
where
    S: Stream<Item = io::Result<IO>>,
{
    incoming.map(move |accepted| accepted.map(|io| GuardedIo::new(io, deadlines)))
}

/// A connection that fails its reads once a deadline has passed, which
/// makes the HTTP/2 (or TLS) layer above drop it.
pub struct GuardedIo<IO> {
    io: IO,
    /// Until the first bytes have been read.
    handshake: Option<Pin<Box<Sleep>>>,
    first_bytes_read: usize,
    end_of_life: Pin<Box<Sleep>>,
}

impl<IO> GuardedIo<IO> {
    fn new(io: IO, deadlines: ConnectionDeadlines) -> Self {
        let accepted = Instant::now();
        Self {
            io,
            handshake: Some(Box::pin(sleep_until(accepted + deadlines.handshake_timeout))),
            first_bytes_read: 0,
            end_of_life: Box::pin(sleep_until(accepted + deadlines.max_lifetime)),
        }
    }

    /// An error once a deadline has passed; polling registers for both.
    fn check_deadlines(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.end_of_life.as_mut().poll(cx).is_ready() {
            tracing::debug!("closing a connection past its maximum age and grace");
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connection past its maximum age"));
        }
        if let Some(handshake) = &mut self.handshake
            && handshake.as_mut().poll(cx).is_ready()
        {
            tracing::debug!(read = self.first_bytes_read, "closing a connection silent after accept");
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no handshake within the timeout"));
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
        if self.handshake.is_some() {
            self.first_bytes_read += buf.filled().len() - before;
            if self.first_bytes_read >= FIRST_BYTES {
                self.handshake = None;
            }
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
