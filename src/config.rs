//! Command line: every flag has an environment fallback, so the same binary
//! is configured by flags in a terminal and by environment in a deployment.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{server::ServerSettings, store::PoolSettings};

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (applies pending migrations first, creating the database if
    /// it is missing).
    Serve(ServeArgs),
    /// Apply pending migrations (creating the database if it is missing) and exit.
    Migrate,
    /// Check the invariants I1–I3 on the database and print every violation;
    /// exits 0 when clean, 2 when violations were found, 1 when it could not run.
    Audit,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DRAFT_PUBLISHER_LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,

    /// Do not create the database or apply migrations at start-up.
    #[arg(long, env = "DRAFT_PUBLISHER_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// How long calls in flight may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "DRAFT_PUBLISHER_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Largest request message accepted, in bytes.
    #[arg(long, env = "DRAFT_PUBLISHER_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Maximum number of database connections.
    #[arg(long, env = "DRAFT_PUBLISHER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a call waits for a database connection before UNAVAILABLE.
    #[arg(long, env = "DRAFT_PUBLISHER_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// PostgreSQL statement timeout for the service's queries.
    #[arg(long, env = "DRAFT_PUBLISHER_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,
}

impl ServeArgs {
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    pub fn server_settings(&self) -> ServerSettings {
        ServerSettings {
            shutdown_grace: self.shutdown_grace,
            max_message_size: self.max_message_bytes,
            ..ServerSettings::default()
        }
    }
}
