//! `TestApp`: the real server on a database of the test's own, spoken to
//! through a typed client, with the database at hand for checks in SQL.
//!
//! ```ignore
//! let app = TestApp::builder().request_timeout(Duration::from_millis(300)).spawn().await;
//! let draft = app.complete_draft(&new_id()).await;
//! let published = app.publish(&draft.organization_id, &draft.id).await?;
//! ```

use std::{
    net::SocketAddr,
    ops::Deref,
    sync::{Arc, Mutex, Once},
    time::Duration,
};

use draft_publisher::{
    Clock, PoolSettings, Pooler, Store, SystemClock, Timestamp, prepare_database,
    server::{BearerTokens, RelaySettings, ServerSettings, TlsSettings},
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tonic::transport::Channel;

use crate::support::{
    client::TestClient,
    database::{TestDatabase, UNREACHABLE_DATABASE_URL, with_database},
    net,
    server::TestServer,
};

/// Logs go to the test output only when `TEST_LOG` is set.
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            // Logs only: the tests of traces run the binary.
            let _ = draft_publisher::telemetry::init(draft_publisher::config::LogFormat::Text);
        }
    });
}

/// The system clock plus an offset the test can move forward, so that
/// "scheduled until publish_at" is observable without waiting.
#[derive(Default)]
pub struct TestClock {
    offset: Mutex<Duration>,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let offset = *self.offset.lock().unwrap();
        Timestamp::from_datetime(SystemClock.now().as_datetime() + offset)
    }
}

/// The relay's settings as the service's defaults make them.
fn relay_settings(nats_url: &str) -> RelaySettings {
    RelaySettings { nats_url: nats_url.to_owned(), duplicate_window: Duration::from_secs(600) }
}

/// Where the server keeps its data.
enum Database {
    /// A database of the test's own on the test server, dropped afterwards.
    Own,
    /// This one (on a private cluster, say), created and migrated if missing.
    At(String),
    /// [`UNREACHABLE_DATABASE_URL`].
    Unreachable,
}

/// The server's settings, defaults unless a test says otherwise.
#[must_use = "call .spawn() to start the server"]
pub struct TestAppBuilder {
    settings: ServerSettings,
    pool: PoolSettings,
    database: Database,
    /// A pooler's or proxy's URL (any database), and whether it pools
    /// transactions: the server reaches its database through it,
    /// migrations go directly.
    via: Option<(String, Pooler)>,
}

impl TestAppBuilder {
    /// Bearer tokens the server accepts (authentication on).
    pub fn auth<T: AsRef<str>>(mut self, tokens: impl IntoIterator<Item = T>) -> Self {
        self.settings.auth = BearerTokens::new(tokens);
        self
    }

    /// A token file of these lines (authentication on), loaded as `serve`
    /// loads `--auth-tokens-file`.
    pub fn token_file(mut self, lines: &str) -> Self {
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(file.path(), lines).expect("token file written");
        self.settings.auth = BearerTokens::load(Some(file.path()), &[]).expect("a valid token file");
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.settings.max_concurrent_calls = calls;
        self
    }

    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    pub fn http2_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.settings.http2_keepalive_interval = interval;
        self.settings.http2_keepalive_timeout = timeout;
        self
    }

    /// TLS on the gRPC listener; the app's own client then connects lazily
    /// and in plaintext, so tests make their TLS clients themselves.
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.settings.tls = Some(tls);
        self
    }

    /// Any other server setting.
    pub fn server_settings(mut self, edit: impl FnOnce(&mut ServerSettings)) -> Self {
        edit(&mut self.settings);
        self
    }

    /// The database pool's settings.
    pub fn pool(mut self, edit: impl FnOnce(&mut PoolSettings)) -> Self {
        edit(&mut self.pool);
        self
    }

    /// Serves from `url` instead of a database of the test's own.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database = Database::At(url.to_owned());
        self
    }

    /// Reaches its own database through `pooler` (`--db-pooler
    /// transaction`), after migrating it directly.
    pub fn through_pooler(mut self, pooler: &crate::support::pgbouncer::PgBouncer) -> Self {
        self.via = Some((pooler.url("postgres"), Pooler::Transaction));
        self
    }

    /// Reaches its own database through `proxy`, after migrating it directly.
    pub fn through_proxy(mut self, proxy: &crate::support::fault_proxy::FaultProxy) -> Self {
        self.via = Some((proxy.url("postgres"), Pooler::None));
        self
    }

    /// Relays the change feed to this NATS server.
    pub fn relay_to(mut self, nats_url: &str) -> Self {
        self.settings.relay = Some(relay_settings(nats_url));
        self
    }

    /// Serves from a database server that cannot be reached.
    pub fn unreachable_database(mut self) -> Self {
        self.database = Database::Unreachable;
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_logging();
        let (own, url, store) = match self.database {
            Database::Own => {
                let own = TestDatabase::new();
                let store = match &self.via {
                    None => own.prepare(&self.pool).await,
                    Some((via, pooler)) => {
                        own.prepare(&PoolSettings::default()).await.close().await;
                        let pool = PoolSettings { pooler: *pooler, ..self.pool.clone() };
                        Store::connect_lazy(&with_database(via, own.name()), &pool).expect("a valid URL")
                    }
                };
                let url = own.url.clone();
                (Some(own), url, store)
            }
            Database::At(url) => {
                let store = prepare_database(&url, &self.pool).await.expect("database prepared");
                (None, url, store)
            }
            Database::Unreachable => {
                let url = UNREACHABLE_DATABASE_URL.to_owned();
                let store = Store::connect_lazy(&url, &self.pool).expect("a valid URL");
                (None, url, store)
            }
        };
        let clock = Arc::new(TestClock::default());
        let tls = self.settings.tls.is_some();
        let server = TestServer::spawn(store, clock.clone(), self.settings).await;
        let channel = if tls { net::lazy_channel(server.addr) } else { net::channel(server.addr).await };
        // Lazy, so that tests of an unreachable database can still build it.
        let db = PgPoolOptions::new().connect_lazy(&url).expect("a valid URL");
        TestApp {
            client: TestClient::new(channel.clone()),
            channel,
            addr: server.addr,
            metrics_addr: server.metrics_addr,
            clock,
            db,
            database_url: url,
            server,
            _database: own,
        }
    }
}

pub struct TestApp {
    client: TestClient,
    channel: Channel,
    pub addr: SocketAddr,
    /// The plain-HTTP listener serving `/metrics`.
    pub metrics_addr: SocketAddr,
    pub clock: Arc<TestClock>,
    /// A pool of the test's own on the server's database, for SQL checks.
    pub db: PgPool,
    database_url: String,
    server: TestServer,
    /// Dropped (with the database) after everything above.
    _database: Option<TestDatabase>,
}

/// The app is its own default client: `app.create_draft(request)`.
impl Deref for TestApp {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.client
    }
}

impl TestApp {
    /// The server with default settings on a fresh database.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            settings: ServerSettings::default(),
            pool: PoolSettings::default(),
            database: Database::Own,
            via: None,
        }
    }

    /// The default client, to move into a task.
    pub fn client(&self) -> TestClient {
        self.client.clone()
    }

    /// A client on a connection of its own.
    pub async fn connect(&self) -> TestClient {
        TestClient::connect(self.addr).await
    }

    /// A client on the default connection sending `authorization: <value>`.
    pub fn client_with_authorization(&self, value: &str) -> TestClient {
        TestClient::with_authorization(self.channel.clone(), value)
    }

    /// A connection of its own, for other services (health, reflection) and
    /// raw calls.
    pub async fn channel(&self) -> Channel {
        net::channel(self.addr).await
    }

    /// A second server (default settings) on the same database: another
    /// replica of the service.
    pub async fn spawn_replica(&self) -> TestServer {
        let store = Store::connect_lazy(&self.database_url, &PoolSettings::default()).expect("a valid URL");
        TestServer::spawn(store, Arc::new(SystemClock), ServerSettings::default()).await
    }

    /// Another replica, relaying the change feed to this NATS server.
    pub async fn spawn_relaying_replica(&self, nats_url: &str) -> TestServer {
        let store = Store::connect_lazy(&self.database_url, &PoolSettings::default()).expect("a valid URL");
        let settings = ServerSettings { relay: Some(relay_settings(nats_url)), ..ServerSettings::default() };
        TestServer::spawn(store, Arc::new(SystemClock), settings).await
    }

    /// Begins a graceful shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        self.server.begin_shutdown();
    }

    /// Waits for the server to stop, returning what `serve` returned.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        self.server.stopped().await
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The URL of the server's database, for commands run against it.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }
}
