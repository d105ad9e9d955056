//! The change feed and the NATS relay under chaos: three replicas relaying
//! to a private NATS, sixteen publishers (immediate and scheduled), a
//! watcher per organisation on every replica, while a replica is SIGKILLed,
//! PostgreSQL restarts and NATS restarts. Every watcher, resuming from its
//! last cursor, must see every change exactly once in the one order; the
//! stream must hold exactly one message per change; no PUBLISHED may arrive
//! before its publish time.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant, SystemTime},
};

use draft_publisher::proto::v1 as pb;

use crate::{
    callers::*,
    harness::Deployment,
    support::{nats::NatsServer, pg_cluster::StopMode, wait::until_some, *},
};

const REPLICAS: usize = 3;
const ORGANISATIONS: usize = 4;
const PUBLISHERS: usize = 16;
const LOAD_FOR: Duration = Duration::from_secs(12);
/// Scheduled publishes go live this far ahead, so that some are released
/// during the disruptions and some after.
const SCHEDULED_AHEAD: Duration = Duration::from_secs(3);

/// A change as a watcher received it, and when.
struct Received {
    change: pb::EventChange,
    at: SystemTime,
}

fn seconds(t: &prost_types::Timestamp) -> f64 {
    t.seconds as f64 + f64::from(t.nanos) / 1e9
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Watches `org` on one replica until `stop`, resuming from the last cursor
/// after every failure (replica killed, database restarting).
async fn watcher(
    replica: TestClient,
    org: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
) {
    let mut cursor = String::new();
    while !stop.load(Relaxed) {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), replica.watch_event_changes(&org, &cursor)).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
                Ok(Ok(Some(message))) => {
                    let change = message.change.expect("a change");
                    cursor = change.cursor.clone();
                    received.lock().unwrap().push(Received { change, at: SystemTime::now() });
                }
                Ok(Ok(None) | Err(_)) => break,
                Err(_) if stop.load(Relaxed) => return,
                Err(_) => {}
            }
        }
    }
}

/// Publishes drafts of `org`, every third one scheduled, until `stop`;
/// returns the change ids the feed must hold.
async fn publisher(
    id: usize,
    clients: Arc<Vec<TestClient>>,
    stats: Arc<Stats>,
    org: String,
    stop: Arc<AtomicBool>,
) -> BTreeSet<String> {
    let mut expected = BTreeSet::new();
    for i in 0.. {
        if stop.load(Relaxed) {
            break;
        }
        let first = id + i;
        let draft_id = create_draft(&stats, &clients, first, &org).await;
        let mut request = publish_request(&org, &draft_id);
        let scheduled = i % 3 == 2;
        if scheduled {
            let at = SystemTime::now() + SCHEDULED_AHEAD;
            request.publish_at = Some(prost_types::Timestamp::from(at));
        }
        let answer = publish_with(&stats, &clients, first, request)
            .await
            .unwrap_or_else(|s| panic!("publish of {draft_id} failed for good: {s:?}"));
        expected.insert(format!("{}.published", answer.event_id));
        if scheduled && answer.event.as_ref().unwrap().status() == pb::EventStatus::Scheduled {
            expected.insert(format!("{}.scheduled", answer.event_id));
        }
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_watcher_and_the_stream_get_every_change_once_through_crashes_and_restarts() {
    let mut nats = NatsServer::start().await;
    let mut deployment = Deployment::start(REPLICAS, &["--nats-url", &nats.url]).await;
    let orgs: Vec<String> = (0..ORGANISATIONS).map(|_| new_id()).collect();
    let stop_watching = Arc::new(AtomicBool::new(false));
    let mut watched = Vec::new();
    for replica in &deployment.replicas {
        for org in &orgs {
            let received = Arc::new(Mutex::new(Vec::new()));
            let task =
                tokio::spawn(watcher(replica.client(), org.clone(), received.clone(), stop_watching.clone()));
            watched.push((org.clone(), received, task));
        }
    }
    let clients = Arc::new(deployment.clients(REPLICAS));
    let (stats, stop) = (Arc::new(Stats::default()), Arc::new(AtomicBool::new(false)));
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|id| {
            let org = orgs[id % ORGANISATIONS].clone();
            (org.clone(), tokio::spawn(publisher(id, clients.clone(), stats.clone(), org, stop.clone())))
        })
        .collect();

    let progress = |at: Duration| {
        let stats = stats.clone();
        async move {
            let target = stats.oks() + 100;
            until("publish progress", Duration::from_secs(60), || async {
                stats.oks() >= target && started.elapsed() >= at
            })
            .await;
        }
    };
    progress(Duration::from_secs(2)).await;
    deployment.replicas[0].kill();
    println!("[chaos] replica 0 killed at {:?}", started.elapsed());
    progress(Duration::from_secs(4)).await;
    deployment.replicas[0].restart();
    deployment.replicas[0].until_serving(Duration::from_secs(30)).await;
    progress(Duration::from_secs(6)).await;
    tokio::task::block_in_place(|| deployment.cluster.restart(StopMode::Fast));
    println!("[chaos] PostgreSQL restarted at {:?}", started.elapsed());
    progress(Duration::ZERO).await;
    nats.stop();
    println!("[chaos] NATS stopped at {:?}", started.elapsed());
    progress(Duration::from_secs(9)).await;
    nats.start_again().await;
    println!("[chaos] NATS started again at {:?}", started.elapsed());
    tokio::time::sleep(LOAD_FOR.saturating_sub(started.elapsed())).await;
    stop.store(true, Relaxed);
    let mut expected: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (org, publisher) in publishers {
        expected.entry(org).or_default().extend(publisher.await.expect("publisher finished"));
    }
    stats.print("feed delivery");
    assert_eq!(stats.gave_up(), 0);

    // Every change of every organisation, once the last scheduled one is due.
    let reader = deployment.replicas[1].client();
    let mut feeds = HashMap::new();
    for org in &orgs {
        let count = expected[org].len();
        let feed = until_some(&format!("{count} changes of {org}"), Duration::from_secs(30), || async {
            let feed = reader.changes_after(org, "").await;
            (feed.len() >= count).then_some(feed)
        })
        .await;
        let ids: BTreeSet<String> = feed.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, expected[org], "the feed of {org} holds exactly the changes published");
        assert_eq!(ids.len(), feed.len(), "no change twice in the feed of {org}");
        feeds.insert(org.clone(), feed);
    }
    for (org, received, _) in &watched {
        let feed = &feeds[org];
        until("every watcher caught up", Duration::from_secs(30), || async {
            received.lock().unwrap().len() >= feed.len()
        })
        .await;
    }
    stop_watching.store(true, Relaxed);
    for (org, received, task) in watched {
        task.await.expect("watcher finished");
        let received = received.lock().unwrap();
        let seen: Vec<&pb::EventChange> = received.iter().map(|r| &r.change).collect();
        assert_eq!(
            seen,
            feeds[&org].iter().collect::<Vec<_>>(),
            "a watcher of {org}: every change once, in order"
        );
        for r in received.iter().filter(|r| r.change.r#type() == pb::EventChangeType::Published) {
            let publish_time = seconds(r.change.event.as_ref().unwrap().publish_time.as_ref().unwrap());
            assert!(unix(r.at) >= publish_time, "{} arrived before its publish time", r.change.id);
        }
    }

    // The stream: exactly one message per change, in feed order.
    for org in &orgs {
        let want: Vec<String> = feeds[org].iter().map(|c| c.id.clone()).collect();
        let messages = nats.until_messages(org, want.len()).await;
        let got: Vec<String> = messages.iter().map(|m| m.headers["Nats-Msg-Id"].clone()).collect();
        assert_eq!(got, want, "the stream of {org}: every change once, in feed order");
    }
    let db = deployment.db().await;
    until("every change recorded as sent", Duration::from_secs(30), || async {
        unsent_changes(&db).await == 0
    })
    .await;
    for (error, _) in stats.errors() {
        assert!(!error.contains("INTERNAL"), "{:?}", stats.errors());
    }
    deployment.assert_audit_clean();
}
