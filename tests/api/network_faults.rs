//! The network between the service and PostgreSQL breaking, through a
//! fault-injecting proxy: a publish whose connection is cut around its
//! commit (the ambiguous commit), connections left half-open, and a slow
//! link that stalls under load.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    str::FromStr,
    time::{Duration, Instant},
};

use sqlx::postgres::PgConnectOptions;
use tonic::Code;

use crate::support::{
    database::server_url,
    fault_proxy::{CommitCut, FaultProxy},
    *,
};

/// The statement timeout of these tests' servers.
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(500);
/// The documented bound on a call over a connection that stopped answering:
/// the statement timeout plus the store's 1 s grace; plus slack for a
/// loaded machine.
const FAILS_WITHIN: Duration = Duration::from_millis(500 + 1_000 + 1_500);

/// The address of the tests' PostgreSQL server.
fn database_addr() -> SocketAddr {
    let options = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
    let host = if options.get_host() == "localhost" { "127.0.0.1" } else { options.get_host() };
    SocketAddr::new(host.parse().expect("an IP address"), options.get_port())
}

async fn app_through(proxy: &FaultProxy) -> TestApp {
    TestApp::builder()
        .through_proxy(proxy)
        .pool(|pool| {
            pool.statement_timeout = STATEMENT_TIMEOUT;
            pool.acquire_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await
}

impl TestApp {
    /// The server with default settings, reaching its database through `proxy`.
    async fn spawn_through(proxy: &FaultProxy) -> Self {
        TestApp::builder().through_proxy(proxy).spawn().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_cut_after_its_commit_is_unavailable_and_its_retry_returns_that_event() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = app_through(&proxy).await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;

    proxy.cut_next_publish(CommitCut::AfterCommit);
    let status = app.publish(&org, &draft.id).await.unwrap_err();

    assert_eq!(proxy.publishes_cut(), 1, "the publish's connection was cut");
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let committed: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM events").fetch_all(&app.db).await.unwrap();
    assert_eq!(committed.len(), 1, "the commit happened although its answer was lost");
    let retry = app.publish(&org, &draft.id).await.expect("the retry answers OK");
    assert!(retry.already_published, "the retry found the committed event");
    assert_eq!(retry.event_id, committed[0].to_string());
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_cut_before_its_commit_is_unavailable_and_its_retry_creates_the_event() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = app_through(&proxy).await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;

    proxy.cut_next_publish(CommitCut::BeforeCommit);
    let status = app.publish(&org, &draft.id).await.unwrap_err();

    assert_eq!(proxy.publishes_cut(), 1, "the publish's connection was cut");
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 0, "nothing committed");
    let retry = app.publish(&org, &draft.id).await.expect("the retry answers OK");
    assert!(!retry.already_published, "the retry created the event");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(app.fetch_draft(&org, &draft.id).await.event_id, retry.event_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_half_open_connections_fail_within_the_bound_and_the_pool_recovers() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = app_through(&proxy).await;
    let org = new_id();
    // Several connections open and idle in the pool.
    let drafts = futures::future::join_all((0..4).map(|_| app.complete_draft(&org))).await;
    wait::until("connections idle in the pool", Duration::from_secs(10), || async {
        let text = metrics::scrape_text(app.metrics_addr).await;
        let idle = metrics::sample(&text, "draftpublisher_db_pool_connections", &[("state", "idle")]);
        let in_use = metrics::sample(&text, "draftpublisher_db_pool_connections", &[("state", "in_use")]);
        idle.is_some_and(|idle| idle >= 1.0) && in_use == Some(0.0)
    })
    .await;

    proxy.half_open();
    let mut failures = 0;
    for draft in &drafts {
        let started = Instant::now();
        let answer = app.get_draft(get_draft_request(&org, &draft.id)).await;
        let took = started.elapsed();

        assert!(took < FAILS_WITHIN, "a call took {took:?} on a half-open connection");
        if let Err(status) = answer {
            assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
            failures += 1;
        }
    }
    assert!(failures > 0, "no call used a half-open connection");

    // Without a restart: new connections replace the dead ones.
    wait::until("calls answer again", Duration::from_secs(10), || async {
        app.get_draft(get_draft_request(&org, &drafts[0].id)).await.is_ok()
    })
    .await;
    for draft in &drafts {
        app.publish(&org, &draft.id).await.expect("publish answers OK after recovery");
    }
    assert_eq!(app.count("SELECT count(*) FROM events").await, drafts.len() as i64);
}

/// How long the slow-network load runs, and its callers.
const LOAD_FOR: Duration = Duration::from_secs(8);
const CALLERS: usize = 16;

/// What one caller did: latencies of its publishes, and their answers.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    /// (draft id, event id, created it) per publish answered OK.
    published: Vec<(String, String, bool)>,
    /// Codes of failed attempts.
    failures: Vec<Code>,
}

/// Creates and publishes drafts until `until`, retrying what is safe to retry.
async fn publish_drafts(client: TestClient, org: String, until: Instant) -> Seen {
    let mut seen = Seen::default();
    while Instant::now() < until {
        let draft = match client.create_draft(complete_draft_request(&org)).await {
            Ok(created) => created.draft.expect("a draft"),
            Err(status) => {
                seen.failures.push(status.code());
                continue;
            }
        };
        for _ in 0..10 {
            let started = Instant::now();
            match client.publish(&org, &draft.id).await {
                Ok(answer) => {
                    seen.latencies.push(started.elapsed());
                    seen.published.push((draft.id.clone(), answer.event_id, !answer.already_published));
                    break;
                }
                Err(status) => seen.failures.push(status.code()),
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishing_over_a_slow_stalling_link_stays_exactly_once() {
    let proxy = FaultProxy::start(database_addr()).await;
    let app = TestApp::spawn_through(&proxy).await;
    let org = new_id();
    let mut clients = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        clients.push(app.connect().await);
    }

    // 50 ms ± 20 ms on every round trip, and a 1 s stall of the whole link
    // every 1.5–3 s.
    proxy.delay(Duration::from_millis(50), Duration::from_millis(20));
    let until = Instant::now() + LOAD_FOR;
    let callers: Vec<_> =
        clients.into_iter().map(|client| tokio::spawn(publish_drafts(client, org.clone(), until))).collect();
    let mut stalls = 0;
    let mut random = 0x5EED_u64;
    while Instant::now() + Duration::from_secs(1) < until {
        random = random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(500 + (random >> 33) % 1_000)).await;
        proxy.stall();
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.resume();
        stalls += 1;
    }
    let mut seen = Seen::default();
    for caller in callers {
        let one = caller.await.unwrap();
        seen.latencies.extend(one.latencies);
        seen.published.extend(one.published);
        seen.failures.extend(one.failures);
    }
    proxy.delay(Duration::ZERO, Duration::ZERO);

    seen.latencies.sort();
    let at = |q: f64| seen.latencies[((seen.latencies.len() - 1) as f64 * q) as usize];
    println!(
        "[network] {} publishes over {LOAD_FOR:?} with {stalls} stalls: p50 {:?}, p99 {:?}, max {:?}; failed attempts {:?}",
        seen.latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        seen.failures
    );
    assert!(!seen.published.is_empty(), "nothing was published");
    assert!(!seen.failures.contains(&Code::Internal), "an INTERNAL answer: {:?}", seen.failures);
    // A retry after an ambiguous failure may be told already_published: one
    // event per draft, and at most one caller told it created it.
    let mut told: HashMap<&str, (HashSet<&str>, usize)> = HashMap::new();
    for (draft_id, event_id, created) in &seen.published {
        let (event_ids, creators) = told.entry(draft_id).or_default();
        event_ids.insert(event_id);
        *creators += usize::from(*created);
    }
    for (draft_id, (event_ids, creators)) in &told {
        assert_eq!(event_ids.len(), 1, "draft {draft_id}: told {event_ids:?}");
        assert!(*creators <= 1, "draft {draft_id}: {creators} callers told they created it");
    }
    let events = app.count("SELECT count(*) FROM events").await;
    assert_eq!(events, told.len() as i64, "events without a caller told, or the reverse");
    crate::races::assert_invariants(&app.db).await;
}
