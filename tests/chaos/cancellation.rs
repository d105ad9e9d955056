//! A cancellation storm: thousands of publishes and creates whose deadlines
//! are so short that many are cancelled mid-way, and callers that drop their
//! calls. Afterwards every pooled connection still works, and every publish
//! took effect whole or not at all.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use uuid::Uuid;

use crate::{callers::*, harness::Deployment, support::*};

const REPLICAS: usize = 2;
/// Enough drafts that the storm leaves some unpublished.
const DRAFTS: usize = 1_200;
const STORM_CALLS: usize = 4_000;
const CONCURRENCY: usize = 48;
/// Calls per replica afterwards: far more than its 16 pooled connections.
const CHECK_CALLS: usize = 300;

/// A draft's id, status, event_id and version, its number of events and
/// one of them.
type DraftRow = (Uuid, String, Option<Uuid>, i64, i64, Option<Uuid>);

/// One storm call: a publish or a create, cancelled by a deadline the
/// server sees, or dropped by the caller after a few milliseconds.
async fn storm_call(
    client: TestClient,
    org: String,
    draft_id: String,
    roll: u64,
) -> Result<(), tonic::Status> {
    // From 0.2 ms, cancelled before the server even reads the call, to
    // two seconds, long enough for a call to finish on a busy machine.
    let spread = roll >> 8;
    let deadline = Duration::from_micros(match roll % 4 {
        0 | 3 => 200 + spread % 20_000,
        1 => 50_000 + spread % 2_000_000,
        _ => 200 + spread % 200_000,
    });
    let call = async move {
        match roll % 4 {
            0 | 1 => {
                let mut request = tonic::Request::new(publish_request(&org, &draft_id));
                request.set_timeout(deadline);
                client.publish_draft(request).await.map(drop)
            }
            2 => {
                let mut request = tonic::Request::new(create_request(&org));
                request.set_timeout(deadline);
                client.create_draft(request).await.map(drop)
            }
            _ => client.publish_draft(publish_request(&org, &draft_id)).await.map(drop),
        }
    };
    // The caller drops the call when its own deadline passes.
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::cancelled("dropped by the caller")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_calls_leave_working_connections_and_whole_publishes() {
    let deployment = Deployment::start(REPLICAS, &[]).await;
    let clients = Arc::new(deployment.clients(8));
    let (stats, org) = (Arc::new(Stats::default()), new_id());
    let drafts: Vec<String> = futures::stream::iter(0..DRAFTS)
        .map(|i| {
            let (stats, clients, org) = (stats.clone(), clients.clone(), org.clone());
            async move { create_draft(&stats, &clients, i, &org).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut random = SplitMix(0x5EED);
    let plan: Vec<_> =
        (0..STORM_CALLS).map(|_| (random.next(), random.below(DRAFTS as u64) as usize)).collect();
    let storm = Stats::default();
    let results: Vec<_> = futures::stream::iter(plan.into_iter().enumerate())
        .map(|(i, (roll, draft))| {
            let client = clients[i % clients.len()].clone();
            storm_call(client, org.clone(), drafts[draft].clone(), roll)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for result in &results {
        storm.call();
        match result {
            Ok(()) => storm.ok(),
            Err(status) => storm.error(status),
        }
    }
    storm.print("cancellation storm");
    let cancelled = results.iter().filter(|r| r.as_ref().is_err_and(is_cancellation)).count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(cancelled >= STORM_CALLS / 10, "only {cancelled} calls were cancelled");
    assert!(ok >= STORM_CALLS / 10, "only {ok} calls succeeded");
    // Cancelled calls fail in the transport (HTTP/2 also resets connections
    // that cancel too many streams) or are answered DEADLINE_EXCEEDED; the
    // service itself never failed one.
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(is_cancellation(status), "a storm call failed in the service: {status:?}");
    }

    // Whole or not at all: unpublished at version 1 with no event, or
    // published at version 2 with exactly its one event.
    let db = deployment.db().await;
    let ids: Vec<Uuid> = drafts.iter().map(|d| d.parse().unwrap()).collect();
    let rows: Vec<DraftRow> = sqlx::query_as(
        "SELECT d.id, d.status, d.event_id, d.version,
                (SELECT count(*) FROM events e WHERE e.draft_id = d.id),
                (SELECT e.id FROM events e WHERE e.draft_id = d.id LIMIT 1)
         FROM drafts d WHERE d.id = ANY($1::uuid[])",
    )
    .bind(&ids)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), DRAFTS);
    let mut published = HashMap::new();
    for (id, status, event_id, version, events, event) in rows {
        let none = status == "draft" && event_id.is_none() && events == 0 && version == 1;
        let whole =
            status == "published" && event_id.is_some() && event_id == event && events == 1 && version == 2;
        assert!(none || whole, "draft {id}: {status} {event_id:?} v{version}, {events} events");
        if let Some(event_id) = event_id {
            published.insert(id.to_string(), event_id.to_string());
        }
    }
    println!("[chaos] {} of {DRAFTS} drafts were published by the storm", published.len());
    assert!(published.len() < DRAFTS, "the storm should leave some drafts unpublished");
    deployment.assert_audit_clean();

    // Every pooled connection of every replica still works: many more calls
    // than connections, none failing (no aborted transaction left behind),
    // and drafts the storm published answer with the event it committed.
    let check = Stats::default();
    for (r, replica) in deployment.replicas.iter().enumerate() {
        let clients: Vec<_> = (0..8).map(|_| replica.client()).collect();
        let answers: Vec<_> = futures::stream::iter(0..CHECK_CALLS)
            .map(|i| {
                let (client, draft_id) = (clients[i % 8].clone(), drafts[i % DRAFTS].clone());
                let request = publish_request(&org, &draft_id);
                async move { (draft_id, client.publish_draft(request).await) }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        for (draft_id, answer) in answers {
            check.call();
            let answer =
                answer.unwrap_or_else(|s| panic!("replica {r}: a call after the storm failed: {s:?}"));
            check.ok();
            if let Some(event_id) = published.get(&draft_id) {
                assert_eq!(&answer.event_id, event_id, "draft {draft_id}");
                assert!(answer.already_published);
            }
        }
    }
    check.print("after the storm");
    deployment.assert_audit_clean();
}
