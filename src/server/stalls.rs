//! Answers stuck on a flow-control window the peer never opens (window
//! starvation). The request timeout ends when an answer's head is ready;
//! after that hyper sends the body only as the peer opens its window, so a
//! peer that never does keeps every such stream, and its answer, in memory
//! while still answering PINGs.
//!
//! Each connection's answers are watched here: an answer waits on the peer
//! from the moment it is handed to hyper, and again after each piece of
//! body hyper takes, until hyper asks for more. `connection` closes a
//! connection whose longest-waiting answer has waited past the stalled
//! answer timeout, which frees all it holds.

use std::{
    collections::HashMap,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    time::Instant,
};

use http_body::Frame;
use tonic::{
    Status,
    body::Body,
    codegen::{BoxFuture, Bytes, http},
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

/// The answers of every open connection, by peer address.
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<SocketAddr, Stalls>>>);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Tracks the answers of the connection from `peer` until the
    /// registration is dropped.
    pub fn register(&self, peer: SocketAddr) -> Registration {
        let stalls = Stalls::default();
        lock(&self.0).insert(peer, stalls.clone());
        Registration { registry: self.clone(), peer, stalls }
    }

    fn find(&self, peer: SocketAddr) -> Option<Stalls> {
        lock(&self.0).get(&peer).cloned()
    }
}

pub struct Registration {
    registry: Registry,
    peer: SocketAddr,
    pub stalls: Stalls,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.0).remove(&self.peer);
    }
}

/// One connection's answers that wait on the peer, and since when.
#[derive(Debug, Clone, Default)]
pub struct Stalls(Arc<Mutex<Waiting>>);

#[derive(Debug, Default)]
struct Waiting {
    next_id: u64,
    since: HashMap<u64, Instant>,
}

impl Stalls {
    /// When the answer that has waited longest began to wait.
    pub fn oldest(&self) -> Option<Instant> {
        lock(&self.0).since.values().min().copied()
    }

    fn watch(&self, body: Body) -> Body {
        let id = {
            let mut waiting = lock(&self.0);
            waiting.next_id += 1;
            let id = waiting.next_id;
            waiting.since.insert(id, Instant::now());
            id
        };
        Body::new(Watched { body, stalls: self.clone(), id })
    }

    fn waits(&self, id: u64) {
        lock(&self.0).since.entry(id).or_insert_with(Instant::now);
    }

    fn not_waiting(&self, id: u64) {
        lock(&self.0).since.remove(&id);
    }
}

struct Watched {
    body: Body,
    stalls: Stalls,
    id: u64,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            // hyper sends the data when the peer's window allows, then asks again.
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => self.stalls.waits(self.id),
            // The service's turn (Pending), or the answer is done.
            _ => self.stalls.not_waiting(self.id),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stalls.not_waiting(self.id);
    }
}

/// Watches every answer's body on its connection's [`Stalls`].
#[derive(Debug, Clone)]
pub struct StallsLayer {
    registry: Registry,
}

impl StallsLayer {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }
}

impl<S> Layer<S> for StallsLayer {
    type Service = WatchStalls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WatchStalls { inner, registry: self.registry.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct WatchStalls<S> {
    inner: S,
    registry: Registry,
}

/// The peer's address, as tonic records it for plaintext and TLS.
fn peer(request: &http::Request<Body>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    match extensions.get::<TcpConnectInfo>() {
        Some(info) => info.remote_addr,
        None => extensions.get::<TlsConnectInfo<TcpConnectInfo>>()?.get_ref().remote_addr,
    }
}

impl<S> Service<http::Request<Body>> for WatchStalls<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let stalls = peer(&request).and_then(|peer| self.registry.find(peer));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(match stalls {
                Some(stalls) => answer.map(|body| stalls.watch(body)),
                None => answer,
            })
        })
    }
}
