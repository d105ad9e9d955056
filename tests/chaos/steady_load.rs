//! Steady publish load while a replica is SIGKILLed and restarted and
//! PostgreSQL restarts: callers retry, and nobody is ever told two event ids
//! for one draft or an event id that does not exist.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{
    callers::*,
    harness::Deployment,
    support::{pg_cluster::StopMode, rows::told_events_found, *},
};

const REPLICAS: usize = 3;
const CALLERS: usize = 8;
const LOAD_FOR: Duration = Duration::from_secs(15);
/// Publishes that must succeed between two disruptions, so each one hits
/// a working system under load.
const PROGRESS: u64 = 150;

/// What callers were told: every event id, per draft, and the winners.
#[derive(Default)]
struct Told {
    event_ids: HashMap<String, HashSet<String>>,
    created_it: HashMap<String, usize>,
    organization_of: HashMap<String, String>,
}

/// One caller: creates a draft, publishes it twice at once on two replicas,
/// and again, until told to stop.
async fn caller(
    id: usize,
    clients: Arc<Vec<TestClient>>,
    stats: Arc<Stats>,
    told: Arc<Mutex<Told>>,
    stop: Arc<AtomicBool>,
) {
    let org = new_id();
    for i in 0..100_000 {
        if stop.load(Relaxed) {
            return;
        }
        let first = id + i;
        let draft_id = create_draft(&stats, &clients, first, &org).await;
        let (a, b) = tokio::join!(
            publish(&stats, &clients, first, &org, &draft_id),
            publish(&stats, &clients, first + 1, &org, &draft_id)
        );
        let mut told = told.lock().unwrap();
        told.organization_of.insert(draft_id.clone(), org.clone());
        for answer in [a, b] {
            let answer = answer.unwrap_or_else(|s| panic!("publish of {draft_id} failed for good: {s:?}"));
            assert_eq!(answer.event.as_ref().unwrap().draft_id, draft_id);
            told.event_ids.entry(draft_id.clone()).or_default().insert(answer.event_id);
            *told.created_it.entry(draft_id.clone()).or_default() += usize::from(!answer.already_published);
        }
    }
}

/// Waits until callers got `PROGRESS` more successful answers and the load
/// has run for `at`, so disruptions are spread over the whole run.
async fn until_progress(stats: &Stats, started: Instant, at: Duration, what: &str) {
    let target = stats.oks() + PROGRESS;
    until(what, Duration::from_secs(60), || async { stats.oks() >= target && started.elapsed() >= at }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishing_through_a_replica_crash_and_a_database_restart_stays_exactly_once() {
    steady_load(Deployment::start(REPLICAS, &[]).await, "steady load").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_through_pgbouncer_stays_exactly_once() {
    let deployment = Deployment::start_through_pgbouncer(REPLICAS, &[]).await;
    steady_load(deployment, "steady load through PgBouncer").await;
}

async fn steady_load(mut deployment: Deployment, name: &str) {
    let survivors: Vec<u32> = deployment.replicas[1..].iter().map(|r| r.pid()).collect();
    let clients = Arc::new(deployment.clients(REPLICAS));
    let (stats, told, stop) =
        (Arc::new(Stats::default()), Arc::new(Mutex::new(Told::default())), Arc::default());
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|id| tokio::spawn(caller(id, clients.clone(), stats.clone(), told.clone(), Arc::clone(&stop))))
        .collect();

    until_progress(&stats, started, Duration::from_secs(3), "load before the crash").await;
    deployment.replicas[0].kill();
    println!("[chaos] replica 0 killed at {:?}", started.elapsed());
    until_progress(&stats, started, Duration::from_secs(5), "load with a replica down").await;
    deployment.replicas[0].restart();
    deployment.replicas[0].until_serving(Duration::from_secs(30)).await;
    until_progress(&stats, started, Duration::from_secs(8), "load after the replica restarted").await;
    let cluster_restart = Instant::now();
    tokio::task::block_in_place(|| deployment.cluster.restart(StopMode::Fast));
    println!("[chaos] PostgreSQL restarted at {:?}, in {:?}", started.elapsed(), cluster_restart.elapsed());
    until_progress(&stats, started, Duration::ZERO, "load after the database restarted").await;
    // The load runs for its full length whatever the disruptions took.
    tokio::time::sleep(LOAD_FOR.saturating_sub(started.elapsed())).await;
    stop.store(true, Relaxed);
    for caller in callers {
        caller.await.expect("caller finished without panicking");
    }
    stats.print(name);
    println!("[chaos] load ran for {:?}", started.elapsed());

    // The replicas that were not restarted serve again by themselves.
    for (replica, pid) in deployment.replicas[1..].iter_mut().zip(survivors) {
        assert!(
            replica.is_running() && replica.pid() == pid,
            "replica on port {} was restarted",
            replica.port
        );
        replica.until_serving(Duration::from_secs(10)).await;
    }
    let told = Arc::try_unwrap(told).ok().unwrap().into_inner().unwrap();
    // Every replica answers a real call again, with the event id told.
    let (draft_id, ids) = told.event_ids.iter().next().expect("some draft was published");
    for replica in &deployment.replicas {
        let request = publish_request(&told.organization_of[draft_id], draft_id);
        let answer = replica.client().publish_draft(request).await.expect("replica serves");
        assert!(answer.already_published && ids.contains(&answer.event_id));
    }
    for (draft_id, ids) in &told.event_ids {
        assert_eq!(ids.len(), 1, "draft {draft_id}: callers were told {ids:?}");
        assert!(told.created_it[draft_id] <= 1, "draft {draft_id}: two callers were told they created it");
    }
    // I5: every event id a caller was told exists, for that draft.
    let told_pairs: Vec<(Uuid, Uuid)> = told
        .event_ids
        .iter()
        .map(|(draft, ids)| (draft.parse().unwrap(), ids.iter().next().unwrap().parse().unwrap()))
        .collect();
    let (drafts, events): (Vec<Uuid>, Vec<Uuid>) = told_pairs.into_iter().unzip();
    let db = deployment.db().await;
    let matching = told_events_found(&db, &drafts, &events).await;
    assert_eq!(matching, events.len() as i64, "every event id told exists, for its draft");
    let all_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db).await.unwrap();
    assert_eq!(all_events, events.len() as i64, "no event nobody was told about");
    assert_eq!(stats.gave_up(), 0);
    assert!(started.elapsed() >= LOAD_FOR);
    for (error, _) in stats.errors() {
        assert!(!error.contains("INTERNAL"), "{:?}", stats.errors());
    }
    deployment.assert_audit_clean();
}
