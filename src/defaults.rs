//! Every default an operator can change, named once: the command line's
//! defaults, the settings' `Default` impls and the docs all refer to these.
//! A leaf module: it depends on nothing, so every layer may read it.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

/// gRPC listen address: every interface, the contract's port 50051.
pub const LISTEN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50051);

/// Size limit of the database connection pool.
pub const DB_MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a database connection before UNAVAILABLE.
pub const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// PostgreSQL `statement_timeout` of the service's sessions.
pub const DB_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long calls in flight may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest request message accepted, in bytes (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Longest a call may take before DEADLINE_EXCEEDED.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a call may take to deliver its request message; only then does
/// it count against the calls in flight.
pub const REQUEST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Calls in flight beyond which new ones are refused (OVERLOADED).
pub const MAX_CONCURRENT_CALLS: u32 = 256;
/// Interval of HTTP/2 keepalive PINGs on each connection.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a keepalive PING may go unanswered before the connection closes.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once, advertised as
/// `SETTINGS_MAX_CONCURRENT_STREAMS`: bounds what a single peer can pin.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams the server may reset for a peer's protocol errors before it
/// closes the connection (GOAWAY `ENHANCE_YOUR_CALM`): stops MadeYouReset.
pub const HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// Streams reset by the peer before the server accepted them, beyond which
/// the connection is closed: stops rapid reset.
pub const HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Largest header list (request metadata) accepted, in bytes (16 KiB).
pub const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// How long a new connection may take over its handshake (TLS if any, the
/// HTTP/2 preface and the SETTINGS acknowledgement) before it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may wait on the peer's flow-control window before the
/// connection is closed: stops window starvation. Generous, for slow links.
pub const STALLED_ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// Answers that may wait on their clients' flow-control windows at once,
/// server-wide; beyond, the connection with the most is closed. Bounds the
/// memory window starvation can pin across many connections.
pub const MAX_STALLED_ANSWERS: usize = 1024;
/// Age at which a connection is asked to go away (GOAWAY); its calls in
/// flight finish, new ones go to a new connection.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);
/// How long a connection past its age may take to finish its calls before
/// it is closed regardless.
pub const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);
/// How often health probes the database: an outage shows within two
/// intervals, well inside the contract's 2 s.
pub const HEALTH_PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Duplicate window of the JetStream stream the relay creates: far longer
/// than a resend can take (a batch's 5 s acknowledgement timeout plus the
/// database noticing a dead relay), so every resend is recognised.
pub const NATS_DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Memory for published drafts and events kept to answer repeated
/// PublishDraft and GetEvent calls without the database: about 16,000
/// publications of typical size.
pub const PUBLISHED_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Service name in traces when `OTEL_SERVICE_NAME` is unset.
pub const TRACES_SERVICE_NAME: &str = "draft-publisher";
/// How long shutdown waits for the last spans to reach the collector.
pub const TRACES_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
