//! The exactly-once guarantee in one command: creates a complete draft in a
//! fresh organisation, then sends `--count` PublishDraft calls for it at
//! once, each on a connection of its own, and prints every answer, the
//! number of distinct event ids and the number of winners (answers with
//! `already_published = false`). Exits non-zero unless both are exactly one
//! and every call succeeded.
//!
//! ```sh
//! cargo run --example double_publish -- --addr http://127.0.0.1:50051 --count 50
//! ```

use std::{
    collections::BTreeSet,
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use clap::Parser;
use draft_publisher::proto::v1::{self as pb, draft_publisher_client::DraftPublisherClient};
use tokio::{sync::Barrier, task::JoinSet};
use tonic::transport::{Channel, Endpoint};

/// Publishes one draft from many concurrent callers and counts the events.
#[derive(Debug, Parser)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// How many PublishDraft calls to send at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..))]
    count: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether exactly one event was created and every caller was told its id.
async fn run(args: Args) -> anyhow::Result<bool> {
    let endpoint = Endpoint::from_shared(args.addr.clone())
        .context("--addr must be a URL such as http://127.0.0.1:50051")?
        .timeout(Duration::from_secs(30));
    let organization_id = uuid::Uuid::now_v7().to_string();
    let draft = create_complete_draft(&endpoint, &organization_id).await?;
    println!("draft {} in organisation {organization_id}", draft.id);

    // Connect everyone first, then release all calls together.
    let mut clients = Vec::with_capacity(args.count.into());
    for _ in 0..args.count {
        clients.push(DraftPublisherClient::new(connect(&endpoint).await?));
    }
    let start = Arc::new(Barrier::new(clients.len()));
    let mut calls = JoinSet::new();
    for (caller, mut client) in clients.into_iter().enumerate() {
        let (start, request) = (start.clone(), publish_request(&organization_id, &draft.id));
        calls.spawn(async move {
            start.wait().await;
            (caller, client.publish_draft(request).await.map(|response| response.into_inner()))
        });
    }
    let mut answers = calls.join_all().await;
    answers.sort_by_key(|(caller, _)| *caller);

    let (mut event_ids, mut winners, mut failures) = (BTreeSet::new(), 0, 0);
    for (caller, answer) in &answers {
        match answer {
            Ok(answer) => {
                println!(
                    "call {:>3}: event {} already_published={}",
                    caller + 1,
                    answer.event_id,
                    answer.already_published
                );
                event_ids.insert(answer.event_id.clone());
                winners += usize::from(!answer.already_published);
            }
            Err(status) => {
                println!("call {:>3}: {:?} {}", caller + 1, status.code(), status.message());
                failures += 1;
            }
        }
    }
    println!(
        "{} calls: {} OK, {failures} failed; {} distinct event id(s); {winners} winner(s) (already_published=false)",
        answers.len(),
        answers.len() - failures,
        event_ids.len(),
    );
    let exactly_once = failures == 0 && event_ids.len() == 1 && winners == 1;
    println!("{}", if exactly_once { "exactly once: yes" } else { "exactly once: NO" });
    Ok(exactly_once)
}

async fn connect(endpoint: &Endpoint) -> anyhow::Result<Channel> {
    endpoint.connect().await.with_context(|| format!("connecting to {}", endpoint.uri()))
}

async fn create_complete_draft(endpoint: &Endpoint, organization_id: &str) -> anyhow::Result<pb::Draft> {
    let starts_at = SystemTime::now() + Duration::from_secs(30 * 24 * 3600);
    let request = pb::CreateDraftRequest {
        organization_id: organization_id.to_owned(),
        request_id: String::new(),
        title: "Rust meetup".to_owned(),
        description: "Talks and pizza".to_owned(),
        location: "Berlin".to_owned(),
        starts_at: Some(starts_at.into()),
        ends_at: Some((starts_at + Duration::from_secs(3 * 3600)).into()),
    };
    let response = DraftPublisherClient::new(connect(endpoint).await?)
        .create_draft(request)
        .await
        .context("CreateDraft")?
        .into_inner();
    response.draft.context("CreateDraft answered without a draft")
}

fn publish_request(organization_id: &str, draft_id: &str) -> pb::PublishDraftRequest {
    pb::PublishDraftRequest {
        organization_id: organization_id.to_owned(),
        draft_id: draft_id.to_owned(),
        publish_at: None,
    }
}
