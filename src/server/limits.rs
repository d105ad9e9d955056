//! Per-call limits, as a tower layer around every service: a bounded wait
//! for the request message, a server-side timeout (or the caller's shorter
//! deadline, see `deadline`), and a cap on calls in flight that sheds the
//! excess at once.
//!
//! A call takes a slot only once its request message has arrived: a peer
//! that opens streams and sends no message (HEADERS only) must not hold the
//! slots of well-behaved callers until the request timeout. A request whose
//! message prefix announces more than `--max-message-bytes` is refused on
//! that prefix, its body unread, and the connection goes on serving.
//!
//! Every refusal is a proper gRPC status built from a `Refusal` (not a
//! transport error or an HTTP status), so clients see `DEADLINE_EXCEEDED`
//! or `UNAVAILABLE` with an `ErrorInfo` reason. A timed-out call stops
//! waiting, but the use case behind it runs on its own task (see `api`), so a
//! publish in progress still completes whole.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body as _, Frame};
use tokio::sync::Semaphore;
use tonic::{
    Status,
    body::Body,
    codegen::{BoxFuture, Bytes, http},
};
use tower::{Layer, Service};

use crate::api::status::Refusal;

/// Health checks are never shed: a probe must see the server's real state
/// even while it is flooded.
const UNLIMITED_PREFIX: &str = "/grpc.health.v1.Health/";

/// A gRPC message's prefix: a compression flag and a 4-byte length.
const MESSAGE_PREFIX_BYTES: usize = 5;

/// The methods `--max-message-bytes` limits: the service's own (reflection's
/// stream and health are not).
const SIZE_LIMITED_PREFIX: &str = "/draftpublisher.v1.DraftPublisher/";

#[derive(Debug, Clone)]
pub struct CallLimitsLayer {
    timeout: Duration,
    message: MessageWait,
    in_flight: Arc<Semaphore>,
}

/// How long a call may take to deliver its request message, and the size
/// past which a message is refused unread (so not waited for).
#[derive(Debug, Clone, Copy)]
pub struct MessageWait {
    pub timeout: Duration,
    pub max_bytes: usize,
}

impl CallLimitsLayer {
    pub fn new(timeout: Duration, message: MessageWait, max_concurrent_calls: usize) -> Self {
        Self { timeout, message, in_flight: Arc::new(Semaphore::new(max_concurrent_calls)) }
    }
}

impl<S> Layer<S> for CallLimitsLayer {
    type Service = CallLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimits { inner, limits: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct CallLimits<S> {
    inner: S,
    limits: CallLimitsLayer,
}

fn reject(refusal: Refusal) -> http::Response<Body> {
    Status::from(refusal).into_http()
}

impl<S> Service<http::Request<Body>> for CallLimits<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let limited = !request.uri().path().starts_with(UNLIMITED_PREFIX);
        let size_limited = request.uri().path().starts_with(SIZE_LIMITED_PREFIX);
        // The clone that was not polled ready stays behind for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits.clone();
        let (timeout, refusal) = super::deadline::of(request.headers(), limits.timeout);
        Box::pin(async move {
            let (request, _permit) = if limited {
                let (parts, body) = request.into_parts();
                let wait = limits.message;
                let Ok(body) = tokio::time::timeout(wait.timeout, first_message(body, wait.max_bytes)).await
                else {
                    return Ok(reject(Refusal::RequestMessageTimeout(wait.timeout)));
                };
                // Refused on its prefix, its body unread: RESOURCE_EXHAUSTED
                // with a reason, where tonic's own limit would answer
                // OUT_OF_RANGE without one after buffering it.
                let size = body.declared.map(|len| (len - MESSAGE_PREFIX_BYTES) as u64);
                if let Some(size) = size.filter(|size| size_limited && *size > wait.max_bytes as u64) {
                    return Ok(reject(Refusal::MessageTooLarge { size, max: wait.max_bytes }));
                }
                let Ok(permit) = limits.in_flight.try_acquire_owned() else {
                    return Ok(reject(Refusal::Overloaded));
                };
                (http::Request::from_parts(parts, Body::new(body)), Some(permit))
            } else {
                (request, None)
            };
            // Bounds the wait for the answer's head: for a unary call that is
            // the whole call; a stream (health Watch) runs on once started.
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(answer) => answer,
                Err(_) => Ok(reject(refusal)),
            }
        })
    }
}

/// Reads `body` until its first message is whole (or announced as larger
/// than `max_bytes`, which the decoder refuses unread, or the body ended or
/// failed), and returns a body that replays what was read, then goes on.
async fn first_message(mut body: Body, max_bytes: usize) -> Replay {
    let mut read = VecDeque::new();
    let mut prefix = Vec::with_capacity(MESSAGE_PREFIX_BYTES);
    let mut data_bytes = 0usize;
    let ended = loop {
        let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await else {
            break true;
        };
        let whole = match &frame {
            Ok(frame) => match frame.data_ref() {
                Some(data) => {
                    let wanted = MESSAGE_PREFIX_BYTES - prefix.len();
                    prefix.extend_from_slice(&data[..wanted.min(data.len())]);
                    data_bytes += data.len();
                    message_length(&prefix).is_some_and(|len| data_bytes >= len || len > max_bytes)
                }
                None => true, // trailers: nothing more will come
            },
            Err(_) => true,
        };
        read.push_back(frame);
        if whole {
            break false;
        }
    };
    Replay { read, rest: (!ended).then_some(body), declared: message_length(&prefix) }
}

/// The bytes the message announced by `prefix` takes, prefix included.
fn message_length(prefix: &[u8]) -> Option<usize> {
    let length: [u8; 4] = prefix.get(1..MESSAGE_PREFIX_BYTES)?.try_into().ok()?;
    Some(MESSAGE_PREFIX_BYTES + u32::from_be_bytes(length) as usize)
}

/// A request body whose first frames were read ahead.
struct Replay {
    read: VecDeque<Result<Frame<Bytes>, Status>>,
    rest: Option<Body>,
    /// The first message's length as its prefix announced it, prefix included.
    declared: Option<usize>,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(frame));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.as_ref().is_none_or(http_body::Body::is_end_stream)
    }
}
