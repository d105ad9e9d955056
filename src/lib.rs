//! DraftPublisher turns an event draft into a published event, exactly once.
//!
//! A tour, from the wire inwards (arrows point inwards only: `server` → `api`
//! → `app` → `store` and `domain`; `domain` depends on nothing else here).
//! `docs/architecture.md` follows one request through them.
//!
//! - [`config`]: the command line and its environment fallbacks.
//! - `defaults`: **every default** an operator can change (port, pool size,
//!   timeouts, limits), named once and used by the flags and the settings'
//!   `Default` impls alike.
//! - [`server`]: assembles the gRPC server (service, health, reflection)
//!   behind authentication (`auth`: who calls, for which organisations),
//!   call limits and observation, on a bound listener, and runs it until
//!   shutdown, draining calls in flight.
//! - `api`: the gRPC handlers. They decode requests into validated domain
//!   values (`api/decode.rs`), run a use case, and encode the answer.
//!   **Errors become gRPC statuses** (code, `ErrorInfo` reason, details) in
//!   one place: `api/status.rs`.
//! - `app`: the use cases, including the exactly-once publish and the
//!   bounded retries concurrency calls for.
//! - `cache`: published drafts and events kept in memory (bounded), so
//!   repeated publishes and GetEvent cost the database nothing; why that is
//!   always correct is in its module doc.
//! - `in_flight`: publishes running on this replica, by draft, so that a
//!   second publish of the same draft waits for the first's answer instead
//!   of queueing on the draft's row in PostgreSQL.
//! - `error`: what a use case can answer instead of a result, in the
//!   contract's terms; domain and store errors convert into it.
//! - `domain`: validated values (ids, bounded text, timestamps, page tokens)
//!   and a draft's rules: completeness, update masks, status. No I/O, and its
//!   own small error values.
//! - `feed`: the event-change feed on one replica: the sequencer that gives
//!   committed changes their place in the one order, and the hub that wakes
//!   watchers (`docs/architecture.md`: why the order has no late gaps).
//! - `relay`: the NATS JetStream relay of the feed, exactly once per change.
//! - `store`: **all SQL** (the publish statement is in `store/events.rs`) and
//!   the classification of database errors by SQLSTATE and constraint name
//!   (`store/error.rs`). The schema in `migrations/` makes the invariants the
//!   database's job: one event per draft, one draft per event, no orphans.
//! - `health`, `metrics`, `shutdown`, [`telemetry`] (logs and OpenTelemetry
//!   traces): operations.
//! - [`audit`]: the `audit` command, which checks the invariants on a live
//!   database.
//! - [`proto`]: the code generated from `proto/`.

#![forbid(unsafe_code)]

mod api;
mod app;
pub mod audit;
mod auth;
mod cache;
pub mod config;
mod defaults;
mod domain;
mod error;
mod feed;
mod health;
mod in_flight;
mod metrics;
pub mod proto;
mod relay;
pub mod server;
mod shutdown;
mod store;
pub mod telemetry;

// What a program embedding the service (the binary, the tests) builds it from.
pub use crate::{
    api::status::ERROR_DOMAIN,
    app::App,
    domain::{Clock, SystemClock, Timestamp},
    store::{PoolSettings, PoolStats, Pooler, Store},
};
// Request validation, for the fuzz target.
pub use crate::{api::decode, domain::PageToken, error::Error};

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Cli, Command, ServeArgs};

/// Creates the database if it is missing, applies pending migrations and
/// returns the store: what `serve` and `migrate` do before anything else.
pub async fn prepare_database(database_url: &str, settings: &PoolSettings) -> anyhow::Result<Store> {
    Store::create_database_if_missing(database_url).await?;
    let store = Store::connect_lazy(database_url, settings)?;
    store.migrate().await?;
    Ok(store)
}

/// Runs the command line: the whole binary.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let database_url = cli
        .database_url
        .context("DATABASE_URL is required (flag --database-url or environment DATABASE_URL)");
    match cli.command {
        Command::HealthCheck(args) => health::check(&args).await,
        Command::Migrate => {
            let store = prepare_database(&database_url?, &PoolSettings::default()).await?;
            store.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve(args) => serve(&database_url?, args).await,
        Command::Audit(args) => audit::run(&database_url?, args.unsent_after).await,
    }
}

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))
}

async fn serve(database_url: &str, args: ServeArgs) -> anyhow::Result<()> {
    // The settings' files first: a mistake in them stops start-up at once,
    // before the database is touched.
    let settings = args.server_settings()?;
    let pool_settings = args.pool_settings();
    if pool_settings.pooler == Pooler::Transaction && !args.skip_migrations {
        // Migrations hold a session's advisory lock, which a transaction
        // pooler cannot keep.
        anyhow::bail!(
            "--db-pooler transaction needs --skip-migrations: run `draft-publisher migrate` \
             against PostgreSQL directly first"
        );
    }
    let store = if args.skip_migrations {
        Store::connect_lazy(database_url, &pool_settings)?
    } else {
        prepare_database(database_url, &pool_settings).await?
    };
    let grpc = bind(args.listen_addr).await?;
    if let Some(file) = &args.addr_file {
        let addr = grpc.local_addr().context("reading the listen address")?;
        std::fs::write(file, format!("{addr}\n")).with_context(|| format!("writing {}", file.display()))?;
    }
    let metrics = match args.metrics_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let app = app::App::with_cache(store.clone(), Arc::new(SystemClock), args.published_cache_bytes);
    let listeners = server::Listeners { grpc, metrics };
    server::serve(listeners, app, store.clone(), settings, shutdown::signal()).await?;
    store.close().await;
    Ok(())
}
