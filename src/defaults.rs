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
/// Calls in flight beyond which new ones are refused (OVERLOADED).
pub const MAX_CONCURRENT_CALLS: u32 = 256;
/// Interval of HTTP/2 keepalive PINGs on each connection.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a keepalive PING may go unanswered before the connection closes.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often health probes the database: an outage shows within two
/// intervals, well inside the contract's 2 s.
pub const HEALTH_PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Duplicate window of the JetStream stream the relay creates: far longer
/// than a resend can take (a batch's 5 s acknowledgement timeout plus the
/// database noticing a dead relay), so every resend is recognised.
pub const NATS_DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
