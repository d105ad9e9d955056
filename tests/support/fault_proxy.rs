//! A TCP proxy of the tests' own between the service and PostgreSQL that
//! breaks the network on demand: it can delay every round trip, stall every
//! connection, leave the open ones half-open (they stop answering, with no
//! FIN or RST, while new ones work), cut them all, re-point to another
//! server, or cut the one connection that carries a publish right around its
//! commit.
//!
//! It reads the PostgreSQL frontend protocol just enough to find the publish:
//! the Parse of the statement that inserts the event, then the exchange that
//! executes it (Bind … Sync), whose Sync commits it (an implicit
//! transaction).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// The publish statement, as its Parse message carries it.
const PUBLISH_STATEMENT: &[u8] = b"INSERT INTO events";

/// Startup-phase request codes after which the real startup message follows.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// What happens to the exchange that commits the next publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitCut {
    /// PostgreSQL receives it and commits; the connection is cut once its
    /// answer is back at the proxy, which never passes it on.
    AfterCommit,
    /// The connection is cut before PostgreSQL receives it: nothing commits.
    BeforeCommit,
}

/// The faults in force; connections are numbered in the order accepted.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// Added to each chunk sent to the server (so to each round trip), plus
    /// or minus up to `jitter`, drawn per chunk.
    delay: Duration,
    jitter: Duration,
    stalled: bool,
    /// Connections numbered below this stop answering for good.
    half_open_below: u64,
    /// Connections numbered below this are closed.
    cut_below: u64,
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    faults: watch::Sender<Faults>,
    next_id: AtomicU64,
    commit_cut: Mutex<Option<CommitCut>>,
    commits_cut: AtomicUsize,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1, relaying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            faults: watch::Sender::new(Faults::default()),
            next_id: AtomicU64::new(0),
            commit_cut: Mutex::new(None),
            commits_cut: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept(listener, shared.clone()));
        Self { addr, shared, accept }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// URL of `database` through the proxy.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.addr)
    }

    /// Adds `delay` ± up to `jitter` (uniform) to every round trip.
    pub fn delay(&self, delay: Duration, jitter: Duration) {
        self.shared.faults.send_modify(|f| (f.delay, f.jitter) = (delay, jitter));
    }

    /// Stops relaying on every connection, open or new, until [`resume`].
    ///
    /// [`resume`]: FaultProxy::resume
    pub fn stall(&self) {
        self.shared.faults.send_modify(|f| f.stalled = true);
    }

    pub fn resume(&self) {
        self.shared.faults.send_modify(|f| f.stalled = false);
    }

    /// Every connection open now stops answering for good, without closing
    /// (a peer gone without a FIN or RST); new connections work.
    pub fn half_open(&self) {
        let below = self.shared.next_id.load(Ordering::SeqCst);
        self.shared.faults.send_modify(|f| f.half_open_below = below);
    }

    /// Closes every connection open now; new connections work.
    pub fn cut_all(&self) {
        let below = self.shared.next_id.load(Ordering::SeqCst);
        self.shared.faults.send_modify(|f| f.cut_below = below);
    }

    /// Relays new connections to `upstream` and cuts the open ones: a
    /// stable address re-pointed to a new primary after a failover.
    pub fn repoint(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = upstream;
        self.cut_all();
    }

    /// Cuts the connection of the next publish at its commit.
    pub fn cut_next_publish(&self, cut: CommitCut) {
        *self.shared.commit_cut.lock().unwrap() = Some(cut);
    }

    /// How many publishes were cut so far.
    pub fn publishes_cut(&self) -> usize {
        self.shared.commits_cut.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connections end with the sender.
        self.shared.faults.send_modify(|f| f.cut_below = u64::MAX);
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(relay(id, client, shared.clone()));
    }
}

/// What to do with the frontend bytes read so far.
enum Step {
    Forward(Vec<u8>),
    /// Forward, then hold back the answer and cut once it is complete.
    ForwardThenCutAtAnswer(Vec<u8>),
    Cut,
}

async fn relay(id: u64, client: TcpStream, shared: Arc<Shared>) {
    let upstream = *shared.upstream.lock().unwrap();
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut faults = shared.faults.subscribe();
    let mut frontend = Frontend::default();
    let mut random = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    // Set once the commit went through: the answer is read, never relayed.
    let mut withheld: Option<Vec<u8>> = None;
    let (mut from_client, mut from_server) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let now = faults.borrow_and_update().clone();
        if id < now.cut_below {
            return;
        }
        if now.stalled || id < now.half_open_below {
            // Read nothing, send nothing: the kernel still acknowledges.
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = faults.changed() => if changed.is_err() { return },
            read = client_read.read(&mut from_client) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                tokio::time::sleep(jittered(now.delay, now.jitter, &mut random)).await;
                let step = frontend.feed(&from_client[..n], &shared);
                let bytes = match step {
                    Step::Forward(bytes) => bytes,
                    Step::ForwardThenCutAtAnswer(bytes) => {
                        withheld = Some(Vec::new());
                        bytes
                    }
                    Step::Cut => {
                        shared.commits_cut.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                if server_write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            read = server_read.read(&mut from_server) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                if let Some(answer) = &mut withheld {
                    answer.extend_from_slice(&from_server[..n]);
                    if has_ready_for_query(answer) {
                        shared.commits_cut.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    continue;
                }
                if client_write.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `delay` ± up to `jitter`, drawn from `state` (xorshift64).
fn jittered(delay: Duration, jitter: Duration, state: &mut u64) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let span = 2 * jitter.as_micros() as u64 + 1;
    let offset = Duration::from_micros(*state % span);
    (delay + offset).saturating_sub(jitter)
}

/// Whether backend messages `bytes` (starting at a message boundary)
/// include ReadyForQuery: the server finished the exchange.
fn has_ready_for_query(bytes: &[u8]) -> bool {
    let mut at = 0;
    while bytes.len() >= at + 5 {
        if bytes[at] == b'Z' {
            return true;
        }
        at += 1 + u32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
    }
    false
}

/// Where a connection is in the publish it may have to cut.
#[derive(Default)]
enum Publish {
    #[default]
    NotSeen,
    /// The publish statement was parsed; its execution comes next.
    Parsed,
    /// Its execution's messages, held back until its Sync.
    Executing(CommitCut, Vec<u8>),
}

/// The frontend side of one connection, parsed into messages.
struct Frontend {
    pending: Vec<u8>,
    startup: bool,
    publish: Publish,
}

impl Default for Frontend {
    fn default() -> Self {
        Self { pending: Vec::new(), startup: true, publish: Publish::NotSeen }
    }
}

impl Frontend {
    fn feed(&mut self, bytes: &[u8], shared: &Shared) -> Step {
        self.pending.extend_from_slice(bytes);
        let mut forward = Vec::new();
        loop {
            let Some(message) = self.next_message() else { return Step::Forward(forward) };
            if self.startup {
                let code = u32::from_be_bytes(message[4..8].try_into().unwrap());
                self.startup = matches!(code, SSL_REQUEST | GSSENC_REQUEST);
                forward.extend_from_slice(&message);
                continue;
            }
            let kind = message[0];
            match &mut self.publish {
                Publish::NotSeen => {
                    let armed = shared.commit_cut.lock().unwrap().is_some();
                    if kind == b'P' && armed && contains(&message, PUBLISH_STATEMENT) {
                        self.publish = Publish::Parsed;
                    }
                    forward.extend_from_slice(&message);
                }
                Publish::Parsed if kind == b'B' => match shared.commit_cut.lock().unwrap().take() {
                    Some(cut) => self.publish = Publish::Executing(cut, message),
                    None => {
                        self.publish = Publish::NotSeen;
                        forward.extend_from_slice(&message);
                    }
                },
                Publish::Parsed => forward.extend_from_slice(&message),
                Publish::Executing(cut, held) => {
                    held.extend_from_slice(&message);
                    if kind == b'S' {
                        return match cut {
                            CommitCut::BeforeCommit => Step::Cut,
                            CommitCut::AfterCommit => {
                                forward.append(held);
                                Step::ForwardThenCutAtAnswer(forward)
                            }
                        };
                    }
                }
            }
        }
    }

    /// The next complete message, taken from `pending`.
    fn next_message(&mut self) -> Option<Vec<u8>> {
        let (header, length_at) = if self.startup { (4, 0) } else { (5, 1) };
        if self.pending.len() < header {
            return None;
        }
        let length = u32::from_be_bytes(self.pending[length_at..length_at + 4].try_into().unwrap()) as usize;
        let total = length_at + length;
        (self.pending.len() >= total).then(|| self.pending.drain(..total).collect())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}
