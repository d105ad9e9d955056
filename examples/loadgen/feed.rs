//! The change feed's numbers (issue 9): how late a publication reaches a
//! WatchEventChanges stream and the NATS JetStream stream under a steady
//! load, how fast the relay's backlog empties once the load stops, and what
//! a thousand idle Watch streams cost the server.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use draft_publisher::proto::v1::{self as pb, draft_publisher_client::DraftPublisherClient};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;

use crate::procfs;

type Client = DraftPublisherClient<Channel>;

/// The relay's stream and the subject of an organisation's publications.
const STREAM: &str = "DRAFTPUBLISHER_EVENTS";
fn published_subject(organization_id: &str) -> String {
    format!("draftpublisher.v1.events.{organization_id}.published")
}

/// How long the deliveries and the gauge may take after the load stops
/// before they count as missing.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct LagArgs {
    /// The service (started with --nats-url and --metrics-addr).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The service's metrics listener (host:port).
    #[arg(long)]
    metrics_addr: String,
    /// Publishes per second, open loop (each on schedule, whatever the
    /// answers before it).
    #[arg(long)]
    rate: f64,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Connections the publishes are spread over.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

/// When each event's publish was sent and answered, and when each reader
/// saw it.
#[derive(Default)]
struct Sightings {
    sent: HashMap<String, (Instant, Instant)>,
    watch: HashMap<String, Instant>,
    nats: HashMap<String, Instant>,
    errors: u64,
}

pub async fn lag(args: &LagArgs) -> anyhow::Result<serde_json::Value> {
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        clients.push(DraftPublisherClient::new(Channel::from_shared(args.addr.clone())?.connect().await?));
    }
    let organization_id = uuid::Uuid::now_v7().to_string();
    let count = (args.rate * args.duration.as_secs_f64()).ceil() as usize;
    let drafts = create_drafts(&clients, &organization_id, count).await?;
    let seen = Arc::new(Mutex::new(Sightings::default()));

    // Both readers start before the first publish, from the feed's start
    // (an organisation with no changes yet) and from the stream's end.
    let mut watch = clients[0]
        .watch_event_changes(pb::WatchEventChangesRequest {
            organization_id: organization_id.clone(),
            after_cursor: String::new(),
        })
        .await?
        .into_inner();
    let watcher = tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Ok(Some(message)) = watch.message().await {
                let Some(change) = message.change else { continue };
                if change.r#type() == pb::EventChangeType::Published
                    && let Some(event) = change.event
                {
                    seen.lock().expect("not poisoned").watch.insert(event.id, Instant::now());
                }
            }
        }
    });
    let mut messages = nats_messages(&args.nats_url, &organization_id).await?;
    let nats_reader = tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Some(Ok(message)) = messages.next().await {
                let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
                if let Some(event_id) = id.as_deref().and_then(|id| id.strip_suffix(".published")) {
                    seen.lock().expect("not poisoned").nats.insert(event_id.to_owned(), Instant::now());
                }
            }
        }
    });

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::with_capacity(count);
    for (n, draft_id) in drafts.into_iter().enumerate() {
        tick.tick().await;
        let mut client = clients[n % clients.len()].clone();
        let (seen, organization_id) = (seen.clone(), organization_id.clone());
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = client
                .publish_draft(pb::PublishDraftRequest { organization_id, draft_id, publish_at: None })
                .await;
            let mut seen = seen.lock().expect("not poisoned");
            match answer {
                Ok(answer) => {
                    seen.sent.insert(answer.into_inner().event_id, (sent, Instant::now()));
                }
                Err(_) => seen.errors += 1,
            }
        }));
    }
    for call in calls {
        call.await?;
    }
    let stopped = Instant::now();
    let achieved_rate = count as f64 / (stopped - started).as_secs_f64();

    let gauge_zero_after = gauge_zero_after(&args.metrics_addr, stopped).await;
    let settled = Instant::now() + SETTLE;
    while Instant::now() < settled {
        {
            let seen = seen.lock().expect("not poisoned");
            if seen.sent.keys().all(|id| seen.watch.contains_key(id) && seen.nats.contains_key(id)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    nats_reader.abort();

    let seen = seen.lock().expect("not poisoned");
    Ok(serde_json::json!({
        "feed": "lag",
        "rate": args.rate,
        "achieved_rate": achieved_rate,
        "published": seen.sent.len(),
        "errors": seen.errors,
        "watch": delivery(&seen.sent, &seen.watch)?,
        "nats": delivery(&seen.sent, &seen.nats)?,
        "gauge_zero_after_s": gauge_zero_after.map(|d| d.as_secs_f64()),
    }))
}

/// Lag percentiles of one reader. From the publish's answer (the commit is
/// before it; a reader that saw the change before the answer arrived counts
/// 0) and, as an upper bound, from the moment the publish was sent (the
/// commit is after it).
fn delivery(
    sent: &HashMap<String, (Instant, Instant)>,
    seen: &HashMap<String, Instant>,
) -> anyhow::Result<serde_json::Value> {
    let mut from_answer = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut from_send = from_answer.clone();
    let mut missing = 0;
    for (event_id, (send, answer)) in sent {
        match seen.get(event_id) {
            Some(at) => {
                from_answer
                    .saturating_record(at.saturating_duration_since(*answer).as_micros().max(1) as u64);
                from_send.saturating_record(at.saturating_duration_since(*send).as_micros().max(1) as u64);
            }
            None => missing += 1,
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(serde_json::json!({
        "received": from_answer.len(),
        "missing": missing,
        "p50_ms": ms(&from_answer, 0.5),
        "p99_ms": ms(&from_answer, 0.99),
        "max_ms": from_answer.max() as f64 / 1000.0,
        "from_send_p50_ms": ms(&from_send, 0.5),
        "from_send_p99_ms": ms(&from_send, 0.99),
    }))
}

/// `count` drafts of a new organisation, created through the service before
/// the clock starts, 4 calls in flight per connection.
async fn create_drafts(
    clients: &[Client],
    organization_id: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let creators = clients.len() * 4;
    let mut tasks = Vec::new();
    for i in 0..creators {
        let mut client = clients[i % clients.len()].clone();
        let organization_id = organization_id.to_owned();
        let mine = (i..count).step_by(creators).count();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(mine);
            for _ in 0..mine {
                let answer = client
                    .create_draft(pb::CreateDraftRequest {
                        organization_id: organization_id.clone(),
                        request_id: String::new(),
                        title: "Rust meetup".to_owned(),
                        description: "Talks and pizza".to_owned(),
                        location: "Berlin".to_owned(),
                        starts_at: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
                        ends_at: Some(prost_types::Timestamp { seconds: 1_900_007_200, nanos: 0 }),
                    })
                    .await?;
                ids.push(answer.into_inner().draft.context("a draft")?.id);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut drafts = Vec::with_capacity(count);
    for task in tasks {
        drafts.extend(task.await??);
    }
    Ok(drafts)
}

/// The organisation's publications as JetStream delivers them from now on.
async fn nats_messages(nats_url: &str, organization_id: &str) -> anyhow::Result<consumer::pull::Stream> {
    let jetstream = jetstream::new(async_nats::connect(nats_url).await.context("connecting to NATS")?);
    // The relay creates the stream when it connects, just after the server
    // starts listening.
    let deadline = Instant::now() + SETTLE;
    let stream = loop {
        match jetstream.get_stream(STREAM).await {
            Ok(stream) => break stream,
            Err(error) if Instant::now() > deadline => return Err(error).context("the relay's stream"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: published_subject(organization_id),
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .context("a consumer of the stream")?;
    Ok(consumer.messages().await?)
}

/// How long after `stopped` the oldest-unsent gauge first read 0 (None: not
/// within SETTLE).
async fn gauge_zero_after(metrics_addr: &str, stopped: Instant) -> Option<Duration> {
    while stopped.elapsed() < SETTLE {
        if scrape(metrics_addr, "draftpublisher_event_changes_oldest_unsent_seconds").await.ok().flatten()
            == Some(0.0)
        {
            return Some(stopped.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// One unlabelled metric's value from the server's Prometheus listener.
pub async fn scrape(metrics_addr: &str, name: &str) -> anyhow::Result<Option<f64>> {
    let mut connection = tokio::net::TcpStream::connect(metrics_addr).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {metrics_addr}\r\nConnection: close\r\n\r\n");
    connection.write_all(request.as_bytes()).await?;
    let mut body = String::new();
    connection.read_to_string(&mut body).await?;
    Ok(body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()))
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// The server's process id on this machine.
    #[arg(long)]
    server_pid: u32,
    /// The server's metrics listener (host:port): the streams count as open
    /// once its Watch gauge says so.
    #[arg(long)]
    metrics_addr: String,
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    /// How long the server's CPU time is watched, without and then with the
    /// streams.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    idle: Duration,
}

/// The server's memory and CPU with `streams` idle Watch streams open (one
/// new organisation, no changes), against the same server idle without them.
pub async fn idle_watch(args: &IdleArgs) -> anyhow::Result<serde_json::Value> {
    let pid = args.server_pid;
    let rss_before = procfs::memory_mib(pid, "VmRSS")?;
    let cpu_without = cpu_over(pid, args.idle).await?;

    let organization_id = uuid::Uuid::now_v7().to_string();
    let mut streams = Vec::with_capacity(args.streams);
    let mut client = None;
    for n in 0..args.streams {
        if n % args.per_connection.max(1) == 0 {
            client =
                Some(DraftPublisherClient::new(Channel::from_shared(args.addr.clone())?.connect().await?));
        }
        let client = client.as_mut().expect("a connection");
        let request = pb::WatchEventChangesRequest {
            organization_id: organization_id.clone(),
            after_cursor: String::new(),
        };
        streams
            .push(client.watch_event_changes(request).await.with_context(|| format!("opening stream {n}"))?);
    }
    let deadline = Instant::now() + SETTLE;
    let open = loop {
        let open = scrape(&args.metrics_addr, "draftpublisher_watch_streams").await?.unwrap_or_default();
        if open >= args.streams as f64 || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rss_open = procfs::memory_mib(pid, "VmRSS")?;
    let cpu_with = cpu_over(pid, args.idle).await?;
    let rss_after = procfs::memory_mib(pid, "VmRSS")?;
    drop(streams);
    Ok(serde_json::json!({
        "feed": "idle-watch",
        "streams": args.streams,
        "open_per_server": open,
        "connections": args.streams.div_ceil(args.per_connection.max(1)),
        "idle_s": args.idle.as_secs_f64(),
        "rss_before_mib": rss_before,
        "rss_open_mib": rss_open,
        "rss_after_idle_mib": rss_after,
        "peak_rss_mib": procfs::memory_mib(pid, "VmHWM")?,
        "cpu_ms_without_streams": cpu_without.as_secs_f64() * 1000.0,
        "cpu_ms_with_streams": cpu_with.as_secs_f64() * 1000.0,
    }))
}

/// CPU time the process uses over `span`.
async fn cpu_over(pid: u32, span: Duration) -> anyhow::Result<Duration> {
    let before = procfs::cpu_time(pid)?;
    tokio::time::sleep(span).await;
    Ok(procfs::cpu_time(pid)?.saturating_sub(before))
}
