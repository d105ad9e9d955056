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
//! answer timeout, which frees all it holds. That bounds how long; to bound
//! how many (memory, across many connections), once more answers wait than
//! the server allows, the connection with the most waiting is closed too.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
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
#[derive(Debug, Clone)]
pub struct Registry {
    connections: Arc<Mutex<HashMap<SocketAddr, Stalls>>>,
    /// Answers waiting on their peers, on all connections.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Beyond `max_waiting` answers waiting on their peers, connections are
    /// closed, the one with the most first.
    pub fn new(max_waiting: usize) -> Self {
        Self { connections: Arc::default(), waiting: Arc::default(), max_waiting }
    }

    /// Tracks the answers of the connection from `peer` until the
    /// registration is dropped.
    pub fn register(&self, peer: SocketAddr) -> Registration {
        let stalls = Stalls(Arc::new(Connection { total: self.waiting.clone(), ..Connection::default() }));
        lock(&self.connections).insert(peer, stalls.clone());
        Registration { registry: self.clone(), peer, stalls }
    }

    fn find(&self, peer: SocketAddr) -> Option<Stalls> {
        lock(&self.connections).get(&peer).cloned()
    }

    /// Over the limit, closes the connection with the most waiting answers,
    /// counting those of connections already closing as gone.
    fn enforce_limit(&self) {
        if self.waiting.load(Ordering::Relaxed) <= self.max_waiting {
            return;
        }
        let connections = lock(&self.connections);
        let (closing, open): (Vec<_>, Vec<_>) =
            connections.values().partition(|stalls| stalls.0.evicted.load(Ordering::Relaxed));
        let released: usize = closing.iter().map(|stalls| stalls.waiting()).sum();
        if self.waiting.load(Ordering::Relaxed).saturating_sub(released) <= self.max_waiting {
            return;
        }
        if let Some(worst) = open.into_iter().max_by_key(|stalls| stalls.waiting()) {
            tracing::debug!(
                waiting = worst.waiting(),
                "too many answers wait on their peers: closing the connection with the most"
            );
            worst.0.evicted.store(true, Ordering::Relaxed);
            if let Some(waker) = lock(&worst.0.waker).take() {
                waker.wake();
            }
        }
    }
}

pub struct Registration {
    registry: Registry,
    peer: SocketAddr,
    pub stalls: Stalls,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut connections = lock(&self.registry.connections);
        // A new connection from the same address may have replaced this one.
        if connections.get(&self.peer).is_some_and(|stalls| Arc::ptr_eq(&stalls.0, &self.stalls.0)) {
            connections.remove(&self.peer);
        }
    }
}

/// One connection's answers that wait on the peer, and since when.
#[derive(Debug, Clone)]
pub struct Stalls(Arc<Connection>);

#[derive(Debug, Default)]
struct Connection {
    waiting: Mutex<Waiting>,
    /// The server's count of waiting answers, which this one's are part of.
    total: Arc<AtomicUsize>,
    /// Set when the connection must close to bring that count down.
    evicted: AtomicBool,
    /// Wakes the connection's task to close it.
    waker: Mutex<Option<Waker>>,
}

#[derive(Debug, Default)]
struct Waiting {
    next_id: u64,
    since: HashMap<u64, Instant>,
}

impl Stalls {
    fn waiting(&self) -> usize {
        lock(&self.0.waiting).since.len()
    }

    /// When the answer that has waited longest began to wait.
    pub fn oldest(&self) -> Option<Instant> {
        lock(&self.0.waiting).since.values().min().copied()
    }

    /// Whether the connection must close to bring the server's count of
    /// waiting answers down; wakes `waker` when it must.
    pub fn evicted(&self, waker: &Waker) -> bool {
        let mut slot = lock(&self.0.waker);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
        self.0.evicted.load(Ordering::Relaxed)
    }

    fn watch(&self, body: Body) -> Body {
        let id = {
            let mut waiting = lock(&self.0.waiting);
            waiting.next_id += 1;
            waiting.next_id
        };
        self.waits(id);
        Body::new(Watched { body, stalls: self.clone(), id })
    }

    fn waits(&self, id: u64) {
        if let Entry::Vacant(vacant) = lock(&self.0.waiting).since.entry(id) {
            vacant.insert(Instant::now());
            self.0.total.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn not_waiting(&self, id: u64) {
        if lock(&self.0.waiting).since.remove(&id).is_some() {
            self.0.total.fetch_sub(1, Ordering::Relaxed);
        }
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
        let registry = self.registry.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(match stalls {
                Some(stalls) => {
                    let answer = answer.map(|body| stalls.watch(body));
                    registry.enforce_limit();
                    answer
                }
                None => answer,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, task::Waker};

    use http_body::Body as _;

    use super::*;

    /// A body that answers its polls from a script.
    struct Scripted(VecDeque<Poll<Option<Frame<Bytes>>>>);

    impl http_body::Body for Scripted {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            self.0.pop_front().unwrap_or(Poll::Ready(None)).map(|frame| frame.map(Ok))
        }
    }

    fn data() -> Poll<Option<Frame<Bytes>>> {
        Poll::Ready(Some(Frame::data(Bytes::from_static(b"draft"))))
    }

    fn poll(body: &mut Body) {
        let _ = Pin::new(body).poll_frame(&mut Context::from_waker(Waker::noop()));
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn an_answer_waits_on_the_peer_only_while_hyper_holds_its_data() {
        let registry = Registry::new(10);
        let connection = registry.register(peer(1));
        let stalls = &connection.stalls;
        let script = [data(), Poll::Pending, data(), Poll::Ready(None)];
        let mut body = stalls.watch(Body::new(Scripted(script.into())));

        assert!(stalls.oldest().is_some(), "handed to hyper, not yet taken");
        poll(&mut body);
        assert!(stalls.oldest().is_some(), "data taken, hyper waits for the window");
        poll(&mut body);
        assert_eq!(stalls.oldest(), None, "the service's turn");
        poll(&mut body);
        assert!(stalls.oldest().is_some());
        drop(body);
        assert_eq!(stalls.oldest(), None);
        assert_eq!(registry.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn over_the_limit_the_connection_with_the_most_waiting_is_evicted_once() {
        let registry = Registry::new(3);
        let (few, most) = (registry.register(peer(1)), registry.register(peer(2)));
        let answer = || Body::new(Scripted(VecDeque::from([data()])));
        let _few: Vec<_> = (0..1).map(|_| few.stalls.watch(answer())).collect();
        let _most: Vec<_> = (0..3).map(|_| most.stalls.watch(answer())).collect();

        registry.enforce_limit();
        registry.enforce_limit(); // the evicted connection's answers count as gone

        assert!(most.stalls.evicted(Waker::noop()));
        assert!(!few.stalls.evicted(Waker::noop()));
    }
}
