//! SIGTERM under load: calls in flight finish OK, new ones are refused in a
//! way callers retry elsewhere, and the process exits 0 within the grace
//! period.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use crate::{
    callers::*,
    harness::Deployment,
    support::{
        health::ServingStatus,
        locks::{hold_drafts, until_waiting_on_locks},
        *,
    },
};

const GRACE: Duration = Duration::from_secs(10);
/// Publishes held in flight by row locks when SIGTERM arrives.
const HELD: usize = 4;
const LOAD_CALLERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_calls_in_flight_finish_and_exits_zero_within_the_grace_period() {
    let mut deployment = Deployment::start(1, &["--shutdown-grace", "10s"]).await;
    let clients = deployment.clients(HELD + LOAD_CALLERS);
    let (stats, org) = (Arc::new(Stats::default()), new_id());
    let mut held = Vec::new();
    for i in 0..HELD {
        held.push(create_draft(&stats, &clients, i, &org).await);
    }
    let db = deployment.db().await;

    // Lock the held drafts' rows, so their publishes stay in flight.
    let holder = hold_drafts(&db, &held).await;
    let in_flight: Vec<_> = held
        .iter()
        .zip(&clients)
        .map(|(draft_id, client)| {
            let (client, request) = (client.clone(), publish_request(&org, draft_id));
            tokio::spawn(async move { client.publish_draft(request).await })
        })
        .collect();
    // Background load, without retries: every answer is counted.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = clients[HELD..]
        .iter()
        .cloned()
        .map(|client| {
            let (stats, stop, org) = (stats.clone(), stop.clone(), org.clone());
            tokio::spawn(async move {
                for _ in 0..100_000 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    stats.call();
                    match client.create_draft(create_request(&org)).await {
                        Ok(_) => stats.ok(),
                        Err(status) => stats.error(&status),
                    }
                }
            })
        })
        .collect();
    until_waiting_on_locks(&db, HELD).await;
    let before_sigterm = stats.oks();

    let replica = &mut deployment.replicas[0];
    replica.terminate();
    let terminated = Instant::now();
    until("the replica stops serving", Duration::from_secs(5), || async {
        replica.health().await != Some(ServingStatus::Serving)
    })
    .await;
    holder.commit().await.unwrap();

    for (call, draft_id) in in_flight.into_iter().zip(&held) {
        let answer = call.await.unwrap().unwrap_or_else(|s| panic!("in-flight publish of {draft_id}: {s:?}"));
        assert!(!answer.already_published);
    }
    let exit = replica.exited(GRACE + Duration::from_secs(5)).await;
    let took = terminated.elapsed();
    stop.store(true, Relaxed);
    for task in load {
        task.await.unwrap();
    }
    stats.print("sigterm");
    println!("[chaos] exited {exit} {took:?} after SIGTERM");

    assert!(exit.success(), "exit status {exit}");
    assert!(took < GRACE, "took {took:?}, grace {GRACE:?}");
    assert!(before_sigterm > 0, "the load ran before SIGTERM");
    // Calls refused during shutdown fail in the transport, which callers
    // retry on another replica; the service itself never failed one.
    for (error, _) in stats.errors() {
        assert!(error.ends_with("(transport)"), "{:?}", stats.errors());
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db).await.unwrap();
    assert_eq!(events, HELD as i64);
    deployment.assert_audit_clean();
}
