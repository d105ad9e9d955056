//! The load itself: each scenario prepares its own drafts through the
//! service, then drives it from callers that each own a connection, and
//! records every call's latency and status code.
//!
//! Shared with the CI smoke test (`tests/api/loadgen.rs`), so it knows
//! nothing of the command line or of output formats.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use draft_publisher::proto::v1::{self as pb, draft_publisher_client::DraftPublisherClient};
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tonic::{Code, transport::Channel};

type Client = DraftPublisherClient<Channel>;

/// Calls in flight at least while a run prepares its drafts.
const PREPARERS: usize = 32;

/// A call not answered by then counts as DEADLINE_EXCEEDED: every caller is
/// answered one way or another.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Every call publishes a draft nobody published yet.
    Fresh,
    /// Every call publishes an already published draft: the fast path.
    Repeat,
    /// All callers publish the same draft at once, draft after draft.
    Contended,
    /// Every caller creates a draft, then publishes it; both calls count.
    Mixed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Repeat => "repeat",
            Self::Contended => "contended",
            Self::Mixed => "mixed",
        }
    }
}

/// One run: a scenario at a concurrency, bounded by a number of calls and a
/// duration, whichever ends first, after a warm-up whose calls are made but
/// not counted (connections, pool and caches settle before the clock starts).
#[derive(Debug, Clone)]
pub struct Load {
    /// e.g. `http://127.0.0.1:50051`
    pub endpoint: String,
    pub scenario: Scenario,
    /// Callers, each on a connection of its own.
    pub concurrency: usize,
    /// Calls to make at most, warm-up included (mixed: create + publish
    /// pairs); drafts are prepared for that many.
    pub requests: usize,
    /// Calls made before the clock starts, not counted (the contended
    /// scenario has none: its rounds are bounded by its drafts).
    pub warmup: Duration,
    /// The measured time, after the warm-up.
    pub duration: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    pub calls: u64,
    /// From the end of the warm-up to the last caller's last answer.
    pub elapsed: Duration,
    /// The run ran out of calls (its budget of prepared drafts) before its
    /// time was up: it measured less than the duration asked for.
    pub exhausted: bool,
    /// Latency of every call, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Calls that did not answer OK, by status code name, plus
    /// `INCONSISTENT` for publishes of one draft that named different events.
    pub errors: BTreeMap<String, u64>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            calls: 0,
            elapsed: Duration::ZERO,
            exhausted: false,
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            errors: BTreeMap::new(),
        }
    }

    fn record<T>(&mut self, started: Instant, result: &Result<T, Code>) {
        let micros = started.elapsed().as_micros().max(1) as u64;
        self.latency_us.saturating_record(micros);
        self.calls += 1;
        if let Err(code) = result {
            *self.errors.entry(format!("{code:?}")).or_default() += 1;
        }
    }

    /// Records a call that started at or after `measured_from`; earlier
    /// calls are the warm-up. (The contended scenario's calls all count:
    /// it has no warm-up, so `measured_from` is its start.)
    fn record_from<T>(&mut self, measured_from: Instant, started: Instant, result: &Result<T, Code>) {
        if started >= measured_from {
            self.record(started, result);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.calls += other.calls;
        self.exhausted |= other.exhausted;
        self.latency_us.add(&other.latency_us).expect("same histogram bounds");
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
    }
}

/// Runs `load` against the service and returns what it measured. Only
/// preparing the drafts can fail; failed calls under load are counted.
pub async fn run(load: &Load) -> anyhow::Result<Outcome> {
    let callers = load.concurrency.max(1);
    let mut clients = Vec::with_capacity(callers);
    for _ in 0..callers {
        clients.push(connect(&load.endpoint).await?);
    }
    let organization_id = uuid::Uuid::now_v7().to_string();
    let drafts = Arc::new(prepare(load, &clients, &organization_id).await?);

    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(callers));
    let agreed: Arc<Vec<OnceLock<String>>> = Arc::new(drafts.iter().map(|_| OnceLock::new()).collect());
    let warmup = if load.scenario == Scenario::Contended { Duration::ZERO } else { load.warmup };
    let measured_from = Instant::now() + warmup;
    let deadline = measured_from + load.duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let caller = Caller {
                client,
                organization_id: organization_id.clone(),
                drafts: drafts.clone(),
                next: next.clone(),
                budget: load.requests,
                measured_from,
                deadline,
            };
            let (barrier, agreed) = (barrier.clone(), agreed.clone());
            let scenario = load.scenario;
            tokio::spawn(async move { caller.run(scenario, &barrier, &agreed).await })
        })
        .collect();
    let mut outcome = Outcome::new();
    for task in tasks {
        outcome.merge(task.await?);
    }
    // The contended scenario starts at once (no warm-up) and may end before
    // `measured_from`; a budget can run out during the warm-up.
    let started = measured_from.min(Instant::now());
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

async fn connect(endpoint: &str) -> anyhow::Result<Client> {
    let channel = Channel::from_shared(endpoint.to_owned())?.connect().await?;
    Ok(DraftPublisherClient::new(channel))
}

/// The draft ids a scenario works on, created (and for the repeat scenario
/// published) through the service before the clock starts.
async fn prepare(load: &Load, clients: &[Client], organization_id: &str) -> anyhow::Result<Vec<String>> {
    let count = match load.scenario {
        Scenario::Fresh => load.requests,
        Scenario::Repeat => clients.len(),
        Scenario::Contended => load.requests.div_ceil(clients.len()),
        Scenario::Mixed => 0,
    };
    // Preparing is not measured: at least PREPARERS calls in flight, spread
    // over the callers' connections, so that one caller's drafts do not
    // take longer to create than the run takes.
    let preparers = clients.len().max(PREPARERS);
    let mut creators = Vec::new();
    for i in 0..preparers {
        let mut client = clients[i % clients.len()].clone();
        let organization_id = organization_id.to_owned();
        let mine = (i..count).step_by(preparers).count();
        let publish = load.scenario == Scenario::Repeat;
        creators.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(mine);
            for _ in 0..mine {
                let id = create(&mut client, &organization_id)
                    .await
                    .map_err(|code| anyhow::anyhow!("creating a draft: {code:?}"))?;
                if publish {
                    publish_draft(&mut client, &organization_id, &id)
                        .await
                        .map_err(|code| anyhow::anyhow!("publishing a draft: {code:?}"))?;
                }
                ids.push(id);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut drafts = Vec::with_capacity(count);
    for creator in creators {
        drafts.extend(creator.await??);
    }
    Ok(drafts)
}

async fn create(client: &mut Client, organization_id: &str) -> Result<String, Code> {
    let request = pb::CreateDraftRequest {
        organization_id: organization_id.to_owned(),
        request_id: String::new(),
        title: "Rust meetup".to_owned(),
        description: "Talks and pizza".to_owned(),
        location: "Berlin".to_owned(),
        starts_at: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
        ends_at: Some(prost_types::Timestamp { seconds: 1_900_007_200, nanos: 0 }),
    };
    let call = tokio::time::timeout(CALL_TIMEOUT, client.create_draft(request));
    match call.await {
        Ok(Ok(response)) => Ok(response.into_inner().draft.map(|d| d.id).unwrap_or_default()),
        Ok(Err(status)) => Err(status.code()),
        Err(_) => Err(Code::DeadlineExceeded),
    }
}

/// Publishes, returning the event id.
async fn publish_draft(client: &mut Client, organization_id: &str, draft_id: &str) -> Result<String, Code> {
    let request = pb::PublishDraftRequest {
        organization_id: organization_id.to_owned(),
        draft_id: draft_id.to_owned(),
        publish_at: None,
    };
    let call = tokio::time::timeout(CALL_TIMEOUT, client.publish_draft(request));
    match call.await {
        Ok(Ok(response)) => Ok(response.into_inner().event_id),
        Ok(Err(status)) => Err(status.code()),
        Err(_) => Err(Code::DeadlineExceeded),
    }
}

struct Caller {
    client: Client,
    organization_id: String,
    drafts: Arc<Vec<String>>,
    /// The next call's number, shared by all callers: the budget is global.
    next: Arc<AtomicUsize>,
    budget: usize,
    /// Calls started before this are the warm-up: made, not recorded.
    measured_from: Instant,
    deadline: Instant,
}

impl Caller {
    async fn run(mut self, scenario: Scenario, barrier: &Barrier, agreed: &[OnceLock<String>]) -> Outcome {
        let mut outcome = Outcome::new();
        match scenario {
            Scenario::Fresh => {
                while let Some(n) = self.take(&mut outcome) {
                    let draft_id = self.drafts[n].clone();
                    self.publish(&draft_id, &mut outcome).await;
                }
            }
            Scenario::Repeat => {
                while let Some(n) = self.take(&mut outcome) {
                    let draft_id = self.drafts[n % self.drafts.len()].clone();
                    self.publish(&draft_id, &mut outcome).await;
                }
            }
            Scenario::Contended => self.contend(barrier, agreed, &mut outcome).await,
            Scenario::Mixed => {
                while self.take(&mut outcome).is_some() {
                    let started = Instant::now();
                    let created = create(&mut self.client, &self.organization_id).await;
                    outcome.record_from(self.measured_from, started, &created);
                    if let Ok(draft_id) = created {
                        self.publish(&draft_id, &mut outcome).await;
                    }
                }
            }
        }
        outcome
    }

    /// The number of the next call, while budget and time last; a budget
    /// spent before the deadline marks the outcome exhausted.
    fn take(&self, outcome: &mut Outcome) -> Option<usize> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if n >= self.budget {
            outcome.exhausted = true;
            return None;
        }
        Some(n)
    }

    /// Publishes and records the call (unless it is part of the warm-up);
    /// the event id when it answered OK.
    async fn publish(&mut self, draft_id: &str, outcome: &mut Outcome) -> Option<String> {
        let started = Instant::now();
        let result = publish_draft(&mut self.client, &self.organization_id, draft_id).await;
        outcome.record_from(self.measured_from, started, &result);
        result.ok()
    }

    /// Every caller publishes every draft, all callers the same draft at
    /// the same moment (a barrier per draft), and checks that the callers
    /// agreed on one event. Rounds are bounded by the drafts prepared, not
    /// by the clock, so that every caller takes part in every round.
    async fn contend(&mut self, barrier: &Barrier, agreed: &[OnceLock<String>], outcome: &mut Outcome) {
        let drafts = self.drafts.clone();
        for (draft_id, agreed) in drafts.iter().zip(agreed) {
            barrier.wait().await;
            if let Some(event_id) = self.publish(draft_id, outcome).await
                && *agreed.get_or_init(|| event_id.clone()) != event_id
            {
                *outcome.errors.entry("INCONSISTENT".to_owned()).or_default() += 1;
            }
        }
    }
}
