//! Many publishers of each draft, spread over three replicas: one winner,
//! one event id.

use std::{collections::HashSet, sync::Arc};

use tokio::sync::Barrier;

use crate::{callers::*, harness::Deployment, support::*};

const REPLICAS: usize = 3;
const DRAFTS: usize = 200;
const PUBLISHERS: usize = 16;
/// Drafts published at once: 4 × 16 calls in flight over 3 replicas.
const DRAFTS_AT_ONCE: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_publishers_per_draft_over_three_replicas_get_one_event() {
    fan_out(Deployment::start(REPLICAS, &[]).await, "fan-out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_publishers_per_draft_through_pgbouncer_get_one_event() {
    fan_out(Deployment::start_through_pgbouncer(REPLICAS, &[]).await, "fan-out through PgBouncer").await;
}

async fn fan_out(deployment: Deployment, name: &str) {
    let clients = Arc::new(deployment.clients(PUBLISHERS));
    let stats = Arc::new(Stats::default());
    let org = new_id();
    let mut drafts = Vec::with_capacity(DRAFTS);
    for i in 0..DRAFTS {
        drafts.push(create_draft(&stats, &clients, i, &org).await);
    }

    let mut answers_by_draft = Vec::with_capacity(DRAFTS);
    for wave in drafts.chunks(DRAFTS_AT_ONCE) {
        let start = Arc::new(Barrier::new(wave.len() * PUBLISHERS));
        let mut calls = Vec::new();
        for draft_id in wave {
            for publisher in 0..PUBLISHERS {
                let (client, start, stats) = (clients[publisher].clone(), start.clone(), stats.clone());
                let request = publish_request(&org, draft_id);
                calls.push(tokio::spawn(async move {
                    start.wait().await;
                    stats.call();
                    let answer = client.publish_draft(request).await;
                    match &answer {
                        Ok(_) => stats.ok(),
                        Err(status) => stats.error(status),
                    }
                    answer
                }));
            }
        }
        let answers = futures::future::join_all(calls).await;
        for (draft_id, answers) in wave.iter().zip(answers.chunks(PUBLISHERS)) {
            let answers: Vec<_> = answers
                .iter()
                .map(|joined| joined.as_ref().unwrap().as_ref().expect("every publisher is answered OK"))
                .cloned()
                .collect();
            answers_by_draft.push((draft_id.clone(), answers));
        }
    }
    stats.print(name);

    for (draft_id, answers) in &answers_by_draft {
        let winners = answers.iter().filter(|a| !a.already_published).count();
        let event_ids: HashSet<_> = answers.iter().map(|a| a.event_id.as_str()).collect();
        assert_eq!(winners, 1, "draft {draft_id}: exactly one publisher creates the event");
        assert_eq!(event_ids.len(), 1, "draft {draft_id}: one event id for all {PUBLISHERS} publishers");
        assert!(answers.iter().all(|a| a.event.as_ref().unwrap().draft_id == *draft_id));
    }
    let db = deployment.db().await;
    let (events, published): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM drafts WHERE status = 'published' AND version = 2)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((events, published), (DRAFTS as i64, DRAFTS as i64));
    assert!(stats.errors().is_empty(), "{:?}", stats.errors());
    deployment.assert_audit_clean();
}
