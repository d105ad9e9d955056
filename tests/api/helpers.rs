//! The wiring behind the specifications: a fresh database per test, the real
//! server on 127.0.0.1:0, typed clients over real connections, and assertions
//! on the contract's error details.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, Once},
    time::Duration,
};

use draft_publisher::{
    App, Clock, ERROR_DOMAIN, PoolSettings, Store, SystemClock, Timestamp, prepare_database,
    proto::v1::{self as pb, draft_publisher_client::DraftPublisherClient},
    server::{self, Listeners, ServerSettings},
};
use sqlx::{Connection, PgPool};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::{ErrorDetails, StatusExt};

pub type Client = DraftPublisherClient<Channel>;

/// The server the tests talk to, when `DATABASE_URL` is not set.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/draft_publisher";

/// Logs go to the test output only when `TEST_LOG` is set.
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            draft_publisher::telemetry::init(draft_publisher::config::LogFormat::Text);
        }
    });
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let server = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{server}/{database}{query}")
}

/// A database of the test's own, dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    pub fn new() -> Self {
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let name = format!("draft_publisher_test_{}", uuid::Uuid::now_v7().simple());
        Self { url: with_database(&base, &name), admin_url: with_database(&base, "postgres"), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot block: use a
        // thread with a runtime of its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                let statement = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
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

pub struct TestApp {
    pub addr: SocketAddr,
    /// The plain-HTTP listener serving `/metrics`.
    pub metrics_addr: SocketAddr,
    pub client: Client,
    pub clock: Arc<TestClock>,
    /// A pool of the test's own on the test database, for SQL checks.
    pub db: PgPool,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Dropped (with the database) after everything above.
    _database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(ServerSettings::default()).await
}

pub async fn spawn_app_with(settings: ServerSettings) -> TestApp {
    spawn_app_with_pool(PoolSettings::default(), settings).await
}

pub async fn spawn_app_with_pool(pool: PoolSettings, settings: ServerSettings) -> TestApp {
    init_logging();
    let database = TestDatabase::new();
    let store = prepare_database(&database.url, &pool).await.expect("test database prepared");
    let clock = Arc::new(TestClock::default());
    let app = App::new(store.clone(), clock.clone());
    let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let metrics_addr = metrics.local_addr().unwrap();
    let (addr, shutdown, server) = spawn_server_with_metrics(app, store, settings, Some(metrics)).await;
    let db = PgPool::connect(&database.url).await.expect("test pool");
    let client = connect(addr).await;
    TestApp {
        addr,
        metrics_addr,
        client,
        clock,
        db,
        shutdown: Some(shutdown),
        server: Some(server),
        _database: database,
    }
}

/// Starts the real server on a free port of 127.0.0.1.
pub async fn spawn_server(
    app: App,
    store: Store,
    settings: ServerSettings,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    spawn_server_with_metrics(app, store, settings, None).await
}

async fn spawn_server_with_metrics(
    app: App,
    store: Store,
    settings: ServerSettings,
    metrics: Option<TcpListener>,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = grpc.local_addr().unwrap();
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(Listeners { grpc, metrics }, app, store, settings, async {
        let _ = signal.await;
    }));
    (addr, shutdown, server)
}

/// A client on a connection of its own.
pub async fn connect(addr: SocketAddr) -> Client {
    let channel = channel(addr).await;
    Client::new(channel).max_decoding_message_size(16 * 1024 * 1024)
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test server")
}

/// What health Check answers for `service`.
pub async fn health_status(addr: SocketAddr, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(channel(addr).await);
    let request = HealthCheckRequest { service: service.to_owned() };
    health.check(request).await.unwrap().into_inner().status()
}

impl TestApp {
    /// Begins a graceful shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for the server to stop, returning what `serve` returned.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        let server = self.server.take().expect("server still running");
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("server stopped within 30 s")
            .expect("server task did not panic")
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The URL of the test's own database, for commands run against it.
    pub fn database_url(&self) -> &str {
        &self._database.url
    }

    /// Creates a draft that can be published.
    pub async fn complete_draft(&self, organization_id: &str) -> pb::Draft {
        self.client
            .clone()
            .create_draft(complete_draft_request(organization_id))
            .await
            .expect("complete draft created")
            .into_inner()
            .draft
            .unwrap()
    }

    pub async fn publish(
        &self,
        organization_id: &str,
        draft_id: &str,
    ) -> Result<pb::PublishDraftResponse, Status> {
        let request = pb::PublishDraftRequest {
            organization_id: organization_id.to_owned(),
            draft_id: draft_id.to_owned(),
            publish_at: None,
        };
        self.client.clone().publish_draft(request).await.map(|r| r.into_inner())
    }

    /// Waits (bounded) until a session of the test database waits on a lock:
    /// a call blocked behind a transaction the test holds open.
    pub async fn until_a_call_waits_on_a_lock(&self) {
        for _ in 0..1_000 {
            let waiting = self
                .count(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await;
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no call ever waited on a lock");
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect(sql)
    }

    /// Starts a PublishDraft of `draft` on a task of its own.
    pub fn publish_in_background(
        &self,
        draft: &pb::Draft,
    ) -> JoinHandle<Result<pb::PublishDraftResponse, Status>> {
        let (organization_id, draft_id) = (draft.organization_id.clone(), draft.id.clone());
        let mut client = self.client.clone();
        tokio::spawn(async move {
            let request = pb::PublishDraftRequest { organization_id, draft_id, publish_at: None };
            client.publish_draft(request).await.map(|r| r.into_inner())
        })
    }

    /// Locks the draft's row in a transaction of the test's own, so that
    /// calls writing it wait until the transaction ends.
    pub async fn hold_draft(&self, draft_id: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut blocker = self.db.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM drafts WHERE id = $1::uuid FOR UPDATE")
            .bind(draft_id)
            .execute(&mut *blocker)
            .await
            .unwrap();
        blocker
    }

    /// Publishes the draft in a transaction of the test's own, left open: its
    /// event holds the draft's slot in the one-event-per-draft index, so a
    /// concurrent PublishDraft waits and then loses on the constraint once
    /// the transaction commits. Returns the transaction and the event's id.
    pub async fn rival_publish(
        &self,
        draft_id: &str,
    ) -> (sqlx::Transaction<'static, sqlx::Postgres>, uuid::Uuid) {
        let draft_id = uuid::Uuid::parse_str(draft_id).unwrap();
        let event_id = uuid::Uuid::now_v7();
        let mut rival = self.db.begin().await.unwrap();
        insert_event_copy(&mut *rival, event_id, draft_id).await;
        sqlx::query(
            "UPDATE drafts SET status = 'published', event_id = $1, publish_time = now(), version = version + 1
             WHERE id = $2",
        )
        .bind(event_id)
        .bind(draft_id)
        .execute(&mut *rival)
        .await
        .unwrap();
        (rival, event_id)
    }
}

/// Inserts event `event_id` as a copy of draft `draft_id`'s content, with raw
/// SQL: another publisher, or a seeded violation.
pub async fn insert_event_copy<'e>(
    db: impl sqlx::PgExecutor<'e>,
    event_id: uuid::Uuid,
    draft_id: uuid::Uuid,
) {
    sqlx::query(
        "INSERT INTO events (id, organization_id, draft_id, title, description, location,
                             starts_at, ends_at, publish_time, create_time)
         SELECT $1, organization_id, id, title, description, location, starts_at, ends_at, now(), now()
         FROM drafts WHERE id = $2",
    )
    .bind(event_id)
    .bind(draft_id)
    .execute(db)
    .await
    .unwrap();
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// A CreateDraft request whose draft is complete enough to publish.
pub fn complete_draft_request(organization_id: &str) -> pb::CreateDraftRequest {
    pb::CreateDraftRequest {
        organization_id: organization_id.to_owned(),
        request_id: String::new(),
        title: "Rust meetup".to_owned(),
        description: "Talks and pizza".to_owned(),
        location: "Berlin".to_owned(),
        starts_at: Some(ts(1_900_000_000)),
        ends_at: Some(ts(1_900_007_200)),
    }
}

/// Asserts the status code and the `ErrorInfo` reason, returning the details.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) -> ErrorDetails {
    assert_eq!(status.code(), code, "status: {status:?}");
    let details = status.get_error_details();
    let info = details.error_info().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, ERROR_DOMAIN);
    assert_eq!(info.reason, reason, "status: {status:?}");
    details
}

/// Asserts INVALID_ARGUMENT with a BadRequest naming `field`.
#[track_caller]
pub fn assert_invalid_field(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "status: {status:?}");
    let details = status.get_error_details();
    assert!(details.error_info().is_some(), "no ErrorInfo in {status:?}");
    let fields: Vec<_> = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"))
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert!(fields.iter().any(|f| f == field), "{field} not in {fields:?} of {status:?}");
}
