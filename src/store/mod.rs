//! All SQL lives here. Every statement is a plain string, exercised by the
//! integration tests against a real PostgreSQL; callers get domain values and
//! the store's own [`Error`], never rows or `sqlx` errors.
//!
//! Each operation a call makes is a span of its own (`#[instrument]` with
//! `skip_all`): in traces, a database child span named for the statement,
//! carrying `db.system` and `db.operation.name` and never a parameter.

mod audit;
mod changes;
mod drafts;
mod error;
mod events;
mod rows;
mod work;

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    AssertSqlSafe, ConnectOptions, PgPool, Postgres, Transaction,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::defaults;

pub use audit::{AuditReport, Violation, ViolationKind};
pub use drafts::CreatedDraft;
pub use error::Error;
pub use events::Publishing;
use work::still_answers;
pub(crate) use work::{Answer, AnswerWithin, Work};

/// A pooled connection idle for longer than this is tested before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Connections for background work: the LISTEN connection, the sequencer,
/// the hub's reads and the relay's batch.
const BACKGROUND_CONNECTIONS: u32 = 4;

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How the service uses its database connections.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a call waits for a connection (including connecting) before
    /// it fails with UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for the service's statements.
    pub statement_timeout: Duration,
    /// What stands between the service and PostgreSQL.
    pub pooler: Pooler,
}

/// A connection pooler in front of PostgreSQL, and so what a session may rely on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Connections to PostgreSQL itself (or a session pooler): a session is
    /// one server connection, so its settings and prepared statements last.
    #[default]
    None,
    /// A transaction pooler (PgBouncer `pool_mode = transaction`): only a
    /// transaction is sure to stay on one server connection. So every unit
    /// of work runs in a transaction that sets the statement timeout (`SET
    /// LOCAL`; the pooler refuses the `options` startup parameter) — sqlx
    /// parses and executes a statement in two exchanges, which outside a
    /// transaction may reach two server connections — and statements are
    /// unnamed: a named one outlives its transaction on a server connection
    /// other clients then share. sqlx names its statements even with the
    /// statement cache off, and prepares even a query without parameters, so
    /// every query says `persistent(false)`.
    Transaction,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: defaults::DB_MAX_CONNECTIONS,
            acquire_timeout: defaults::DB_ACQUIRE_TIMEOUT,
            statement_timeout: defaults::DB_STATEMENT_TIMEOUT,
            pooler: Pooler::None,
        }
    }
}

/// The connection pool's gauges at one instant, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Open connections not in use.
    pub idle: usize,
    /// The configured size limit.
    pub max: u32,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

/// The service's handle on PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// One connection of its own for the health probe, so a busy pool does
    /// not read as a database outage.
    probe: PgPool,
    /// A few connections of their own for the feed's and the relay's
    /// background work (the LISTEN connection, sequencer passes, relay
    /// batches), so that neither they nor the calls can starve the other.
    background: PgPool,
    /// Calls waiting for a connection of `pool` right now (a metric the pool
    /// itself does not expose).
    waiting: Arc<AtomicUsize>,
    /// Behind a transaction pooler: how each unit of work begins
    /// (`BEGIN; SET LOCAL statement_timeout = …`); `None` without one.
    begin: Option<Arc<str>>,
    /// How long an exchange with the server may take.
    answer_within: AnswerWithin,
}

/// Counts one waiter for as long as it lives, even if the wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn begin(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Store {
    /// Creates the database named by `url` when it does not exist yet.
    pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
        if sqlx::Postgres::database_exists(url).await.context("checking that the database exists")? {
            return Ok(());
        }
        match sqlx::Postgres::create_database(url).await {
            Ok(()) => Ok(()),
            // Another replica created it in the meantime.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
            Err(e) => Err(e).context("creating the database"),
        }
    }

    /// Opens a pool; connections are made lazily, so this succeeds even
    /// while the database is down (health reports NOT_SERVING until it is up).
    pub fn connect_lazy(url: &str, settings: &PoolSettings) -> anyhow::Result<Self> {
        let statement_timeout = settings.statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .context("parsing DATABASE_URL")?
            .application_name("draft-publisher")
            .log_statements(tracing::log::LevelFilter::Trace);
        let (options, begin) = match settings.pooler {
            Pooler::None => (options.options([("statement_timeout", statement_timeout.as_str())]), None),
            Pooler::Transaction => (
                options.statement_cache_capacity(0),
                Some(format!("BEGIN; SET LOCAL statement_timeout = {statement_timeout}").into()),
            ),
        };
        let answer_within = AnswerWithin::new(settings.statement_timeout);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // sqlx pings every connection it hands out by default: one more
            // round trip per statement. It also pings every connection it
            // takes back, so a connection that failed while in use never
            // returns to the pool; only one idle long enough for the server
            // to have gone away since is worth testing again.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        still_answers(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_release({
                let answer_within = answer_within.clone();
                move |conn, _| {
                    let suspect = answer_within.silence_lately();
                    Box::pin(async move { if suspect { still_answers(conn).await } else { Ok(true) } })
                }
            })
            .connect_lazy_with(options.clone());
        // The probe's and background work's connections are few and used
        // seldom: always checked.
        let probe = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .after_release(|conn, _| Box::pin(still_answers(conn)))
            .connect_lazy_with(options.clone());
        let background = PgPoolOptions::new()
            .max_connections(BACKGROUND_CONNECTIONS)
            .acquire_timeout(settings.acquire_timeout)
            .after_release(|conn, _| Box::pin(still_answers(conn)))
            .connect_lazy_with(options);
        Ok(Self { pool, probe, background, waiting: Arc::default(), begin, answer_within })
    }

    /// The same database through the background connections: the store the
    /// feed's and the relay's tasks use.
    pub fn background(&self) -> Self {
        Self {
            pool: self.background.clone(),
            probe: self.probe.clone(),
            background: self.background.clone(),
            waiting: Arc::default(),
            begin: self.begin.clone(),
            answer_within: self.answer_within.clone(),
        }
    }

    /// The pool's gauges now.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
            max: self.pool.options().get_max_connections(),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// A connection of the pool for one unit of work, counted while awaited
    /// (behind a transaction pooler, up to its `BEGIN`'s answer).
    async fn connection(&self) -> Result<Work, Error> {
        let _waiting = Waiting::begin(&self.waiting);
        Ok(match &self.begin {
            None => Work::Session(self.pool.acquire().await?),
            Some(begin) => Work::Transaction(
                self.pool.begin_with(AssertSqlSafe(begin.to_string())).within(&self.answer_within).await?,
                self.answer_within.clone(),
            ),
        })
    }

    /// A transaction of its own whose first statements (`SET LOCAL …`, a
    /// lock) go with its BEGIN in one round trip (behind a transaction
    /// pooler, after the statement timeout's).
    async fn transaction(&self, first: &str) -> Result<Transaction<'static, Postgres>, Error> {
        let begin = self.begin.as_deref().unwrap_or("BEGIN");
        self.pool.begin_with(AssertSqlSafe(format!("{begin}; {first}"))).within(&self.answer_within).await
    }

    /// Whether statements may be prepared once per session and named: not
    /// behind a transaction pooler (see [`Pooler::Transaction`]).
    fn named_statements(&self) -> bool {
        self.begin.is_none()
    }

    /// True when LISTEN/NOTIFY reach this replica: not through a transaction
    /// pooler, where a LISTEN ends with its transaction's server connection.
    pub fn can_listen(&self) -> bool {
        self.begin.is_none()
    }

    /// Applies pending migrations; safe to run from several replicas at once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await.context("applying migrations")
    }

    /// True when the database answers a trivial query within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let query = sqlx::query("SELECT 1").persistent(self.named_statements()).execute(&self.probe);
        matches!(tokio::time::timeout(timeout, query).await, Ok(Ok(_)))
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.probe.close().await;
        self.background.close().await;
        self.pool.close().await;
    }
}
