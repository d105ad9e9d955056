//! Command line: every flag has an environment fallback, so the same binary
//! is configured by flags in a terminal and by environment in a deployment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    auth::{BearerTokens, ClientOrganizations, SecretToken},
    defaults,
    server::{Http2Limits, RelaySettings, ServerSettings, TlsSettings},
    store::PoolSettings,
};

/// DraftPublisher: turns event drafts into published events, exactly once.
#[derive(Debug, Parser)]
#[command(name = "draft-publisher", version, about)]
pub struct Cli {
    /// PostgreSQL connection URL, including the database name.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Log format.
    #[arg(long, env = "DRAFT_PUBLISHER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

// Parsed once per process: boxing `ServeArgs` would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (applies pending migrations first, creating the database if
    /// it is missing).
    Serve(ServeArgs),
    /// Apply pending migrations (creating the database if it is missing) and exit.
    Migrate,
    /// Check the invariants I1–I3 and the change feed's C1–C4 on the
    /// database and print every violation; exits 0 when clean, 2 when
    /// violations were found, 1 when it could not run.
    Audit(AuditArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Also report changes due longer ago than this and not yet acknowledged
    /// by NATS (C4), e.g. `5m`; only meaningful with the relay on.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub unsent_after: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DRAFT_PUBLISHER_LISTEN_ADDR", default_value_t = defaults::LISTEN_ADDR)]
    pub listen_addr: SocketAddr,

    /// Do not create the database or apply migrations at start-up.
    #[arg(long, env = "DRAFT_PUBLISHER_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// How long calls in flight may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "DRAFT_PUBLISHER_SHUTDOWN_GRACE", default_value = shown(defaults::SHUTDOWN_GRACE), value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Largest request message accepted, in bytes.
    #[arg(long, env = "DRAFT_PUBLISHER_MAX_MESSAGE_BYTES", default_value_t = defaults::MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Maximum number of database connections.
    #[arg(long, env = "DRAFT_PUBLISHER_DB_MAX_CONNECTIONS", default_value_t = defaults::DB_MAX_CONNECTIONS)]
    pub db_max_connections: u32,

    /// How long a call waits for a database connection before UNAVAILABLE.
    #[arg(long, env = "DRAFT_PUBLISHER_DB_ACQUIRE_TIMEOUT", default_value = shown(defaults::DB_ACQUIRE_TIMEOUT), value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// PostgreSQL statement timeout for the service's queries.
    #[arg(long, env = "DRAFT_PUBLISHER_DB_STATEMENT_TIMEOUT", default_value = shown(defaults::DB_STATEMENT_TIMEOUT), value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,

    /// File of accepted bearer tokens, one per line:
    /// `TOKEN [name=LABEL] [org=UUID[,UUID...]|org=*]`, TOKEN itself or
    /// `sha256:<hex digest>` (blank lines and `#` comments ignored; no `org=`:
    /// every organisation). With any token configured, the service and
    /// reflection require `authorization: Bearer <token>`; health stays open.
    #[arg(long, env = "DRAFT_PUBLISHER_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// Accepted bearer tokens, comma-separated, each for every organisation
    /// (prefer the environment variable or the file: flags show in the
    /// process list).
    #[arg(long, env = "DRAFT_PUBLISHER_AUTH_TOKENS", hide_env_values = true, value_delimiter = ',')]
    pub auth_tokens: Vec<SecretToken>,

    /// Longest a call may take; slower calls are answered DEADLINE_EXCEEDED.
    #[arg(long, env = "DRAFT_PUBLISHER_REQUEST_TIMEOUT", default_value = shown(defaults::REQUEST_TIMEOUT), value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// How long a call may take to send its request message; it counts
    /// against --max-concurrent-calls only once the message is there.
    #[arg(long, env = "DRAFT_PUBLISHER_REQUEST_MESSAGE_TIMEOUT", default_value = shown(defaults::REQUEST_MESSAGE_TIMEOUT), value_parser = humantime::parse_duration)]
    pub request_message_timeout: Duration,

    /// Calls in flight beyond this are refused at once with UNAVAILABLE
    /// (reason OVERLOADED) instead of queueing. Health checks do not count.
    #[arg(long, env = "DRAFT_PUBLISHER_MAX_CONCURRENT_CALLS", default_value_t = defaults::MAX_CONCURRENT_CALLS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_calls: u32,

    /// Interval of HTTP/2 keepalive PINGs on each connection.
    #[arg(long, env = "DRAFT_PUBLISHER_HTTP2_KEEPALIVE_INTERVAL", default_value = shown(defaults::HTTP2_KEEPALIVE_INTERVAL), value_parser = humantime::parse_duration)]
    pub http2_keepalive_interval: Duration,

    /// How long a keepalive PING may go unanswered before the connection is closed.
    #[arg(long, env = "DRAFT_PUBLISHER_HTTP2_KEEPALIVE_TIMEOUT", default_value = shown(defaults::HTTP2_KEEPALIVE_TIMEOUT), value_parser = humantime::parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// HTTP/2 streams one connection may have open at once (advertised as
    /// SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "DRAFT_PUBLISHER_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = defaults::HTTP2_MAX_CONCURRENT_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,

    /// Largest request header list (metadata) accepted, in bytes.
    #[arg(long, env = "DRAFT_PUBLISHER_HTTP2_MAX_HEADER_LIST_BYTES", default_value_t = defaults::HTTP2_MAX_HEADER_LIST_BYTES)]
    pub http2_max_header_list_bytes: u32,

    /// How long a new connection may take over its handshake (TLS if any,
    /// the HTTP/2 preface and the SETTINGS acknowledgement) before it is
    /// closed.
    #[arg(long, env = "DRAFT_PUBLISHER_HANDSHAKE_TIMEOUT", default_value = shown(defaults::HANDSHAKE_TIMEOUT), value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,

    /// How long an answer may wait on the client's HTTP/2 flow-control
    /// window before the connection is closed.
    #[arg(long, env = "DRAFT_PUBLISHER_STALLED_ANSWER_TIMEOUT", default_value = shown(defaults::STALLED_ANSWER_TIMEOUT), value_parser = humantime::parse_duration)]
    pub stalled_answer_timeout: Duration,

    /// Answers that may wait on clients' flow-control windows at once, across
    /// all connections; beyond, the connection with the most is closed.
    #[arg(long, env = "DRAFT_PUBLISHER_MAX_STALLED_ANSWERS", default_value_t = defaults::MAX_STALLED_ANSWERS)]
    pub max_stalled_answers: usize,

    /// Age at which a connection is sent GOAWAY (clients reconnect).
    #[arg(long, env = "DRAFT_PUBLISHER_MAX_CONNECTION_AGE", default_value = shown(defaults::MAX_CONNECTION_AGE), value_parser = humantime::parse_duration)]
    pub max_connection_age: Duration,

    /// How long a connection past its age may finish its calls before it is closed.
    #[arg(long, env = "DRAFT_PUBLISHER_MAX_CONNECTION_AGE_GRACE", default_value = shown(defaults::MAX_CONNECTION_AGE_GRACE), value_parser = humantime::parse_duration)]
    pub max_connection_age_grace: Duration,

    /// Address of a plain-HTTP listener serving Prometheus metrics on
    /// `/metrics` (none by default).
    #[arg(long, env = "DRAFT_PUBLISHER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Memory, in bytes, for published drafts and events kept to answer
    /// repeated PublishDraft and GetEvent calls without the database (0: off).
    #[arg(long, env = "DRAFT_PUBLISHER_PUBLISHED_CACHE_BYTES", default_value_t = defaults::PUBLISHED_CACHE_BYTES)]
    pub published_cache_bytes: usize,

    /// NATS server(s) to relay the change feed to, e.g.
    /// `nats://127.0.0.1:4222` (JetStream stream DRAFTPUBLISHER_EVENTS);
    /// no relay when unset.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// Duplicate window of the JetStream stream when the relay creates it;
    /// keep it longer than any resend can take (see docs/operating.md).
    #[arg(long, env = "DRAFT_PUBLISHER_NATS_DUPLICATE_WINDOW", default_value = shown(defaults::NATS_DUPLICATE_WINDOW), value_parser = humantime::parse_duration)]
    pub nats_duplicate_window: Duration,

    /// PEM certificate chain: serve gRPC over TLS (needs --tls-key).
    #[arg(long, env = "DRAFT_PUBLISHER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "DRAFT_PUBLISHER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): require client certificates signed by it
    /// (mutual TLS; needs --tls-cert).
    #[arg(long, env = "DRAFT_PUBLISHER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Under mutual TLS, the organisations each client certificate may act
    /// for, by subject CN: lines `CN org=UUID[,UUID...]|org=*`. A certificate
    /// whose CN is not listed may call nothing.
    #[arg(long, env = "DRAFT_PUBLISHER_TLS_CLIENT_ORGS", requires = "tls_client_ca")]
    pub tls_client_orgs: Option<PathBuf>,
}

/// A duration as the flags take it (`10s`, `500ms`), for their defaults.
fn shown(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

impl ServeArgs {
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    /// The server's settings, reading the token and TLS files named.
    pub fn server_settings(&self) -> anyhow::Result<ServerSettings> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsSettings::from_files(cert, key, self.tls_client_ca.as_deref())?)
            }
            _ => None,
        };
        Ok(ServerSettings {
            shutdown_grace: self.shutdown_grace,
            max_message_size: self.max_message_bytes,
            auth: BearerTokens::load(self.auth_tokens_file.as_deref(), &self.auth_tokens)?,
            tls_client_orgs: self.tls_client_orgs.as_deref().map(ClientOrganizations::load).transpose()?,
            request_timeout: self.request_timeout,
            request_message_timeout: self.request_message_timeout,
            max_concurrent_calls: self.max_concurrent_calls as usize,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            tls,
            http2: Http2Limits {
                max_concurrent_streams: self.http2_max_concurrent_streams,
                max_header_list_bytes: self.http2_max_header_list_bytes,
                handshake_timeout: self.handshake_timeout,
                stalled_answer_timeout: self.stalled_answer_timeout,
                max_stalled_answers: self.max_stalled_answers,
                max_connection_age: self.max_connection_age,
                max_connection_age_grace: self.max_connection_age_grace,
                ..Http2Limits::default()
            },
            relay: self
                .nats_url
                .clone()
                .map(|nats_url| RelaySettings { nats_url, duplicate_window: self.nats_duplicate_window }),
            ..ServerSettings::default()
        })
    }
}
