//! The relay of the change feed to NATS JetStream.
//!
//! The invariant it keeps: **the relay's progress (`relay_progress`, the
//! position every change up to which was sent) advances only after JetStream
//! acknowledged each of those changes, under `Nats-Msg-Id` = the change id**,
//! within a duplicate window longer than any resend. Changes go out in
//! position order, so what was acknowledged is always such a prefix. A crash
//! anywhere (before the publish, between the PubAck and the recording)
//! leaves the progress behind the change; it is sent again under the same id
//! and JetStream acknowledges it as a duplicate without storing it twice:
//! one message per change.
//!
//! Every replica runs the relay; a batch holds a transaction-scoped advisory
//! lock (`pg_try_advisory_xact_lock`), so one replica sends at a time and a
//! replica killed mid-batch frees the lock with its connection. The batch's
//! transaction stays open while JetStream answers (bounded by the publish
//! timeout): it is what holds the lock, and the lock is what keeps two
//! replicas from interleaving one organisation's changes.
//!
//! NATS being down never touches a publish: the changes wait in PostgreSQL,
//! a metric and a log line say delivery is behind, and the relay resumes by
//! itself.

mod message;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use tokio::{sync::watch, time::Instant};

use crate::{
    domain::{Clock, Position},
    feed::{Feed, POLL_INTERVAL},
    metrics::Metrics,
    shutdown::stopped,
    store::Store,
};

/// The stream every change goes to.
pub const STREAM: &str = "DRAFTPUBLISHER_EVENTS";
/// Its subjects: `draftpublisher.v1.events.<organization_id>.<scheduled|published>`.
pub const SUBJECTS: &str = "draftpublisher.v1.events.>";
/// Changes sent per batch (one transaction, acknowledgements awaited together).
const BATCH: i64 = 256;
/// Longest wait for JetStream's answer to one publish.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failure before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The shortest time from one round of batches to the next: bounds the
/// relay's transactions under load to a hundred a second, and adds at most
/// this to a change's delivery.
const GATHER_FOR: Duration = Duration::from_millis(10);
/// How often, at most, the oldest-unsent gauge is read from the database:
/// it reads 0 within this (plus one loop) after delivery catches up.
const BACKLOG_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// `nats://host:port` of the NATS server (or several, comma-separated).
    pub nats_url: String,
    /// The stream's duplicate window when the relay creates it: longer than
    /// the longest time a change can wait between its first send and its
    /// resend (a batch's ACK_TIMEOUT plus the database noticing a dead
    /// relay's connection), so JetStream always recognises the resend.
    pub duplicate_window: Duration,
}

/// Runs the relay until `stop` turns true.
pub async fn run(
    settings: RelaySettings,
    store: Store,
    feed: Feed,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut relay = Relay { store, clock, metrics, behind: false, backlog_observed: Instant::now() };
    tokio::select! {
        () = relay.run(&settings, feed.subscribe_all()) => {}
        () = stopped(&mut stop) => {}
    }
}

struct Relay {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// A failure was logged and delivery has not caught up since.
    behind: bool,
    /// When the oldest-unsent gauge was last read from the database.
    backlog_observed: Instant,
}

impl Relay {
    async fn run(&mut self, settings: &RelaySettings, mut wake: watch::Receiver<Position>) {
        let jetstream = loop {
            match connect(settings).await {
                Ok(jetstream) => break jetstream,
                Err(error) => self.failed(&error).await,
            }
        };
        loop {
            wake.borrow_and_update();
            let began = Instant::now();
            match self.send_due(&jetstream).await {
                Ok(()) => self.caught_up(),
                Err(error) => {
                    self.failed(&error).await;
                    continue;
                }
            }
            let next_observation = self.observe_backlog_at_most_every(BACKLOG_EVERY).await;
            let _ = tokio::time::timeout(POLL_INTERVAL.min(next_observation), wake.changed()).await;
            // Changes positioned meanwhile go out together: under load a
            // batch per sequencer pass would cost a transaction per few
            // changes.
            tokio::time::sleep_until(began + GATHER_FOR).await;
        }
    }

    /// Sends batches until nothing is due (or another replica is sending).
    async fn send_due(&self, jetstream: &jetstream::Context) -> anyhow::Result<()> {
        loop {
            let Some(batch) = self.store.begin_relay_batch(BATCH).await? else {
                return Ok(());
            };
            let count = batch.changes.len();
            if count == 0 {
                return Ok(());
            }
            let (sent, failure) = message::publish_in_order(jetstream, &batch.changes).await;
            let last = batch.changes[..sent].last().map(|change| change.position);
            batch
                .mark_sent_through(last, self.clock.now())
                .await
                .context("recording the relay's progress")?;
            self.metrics.observe_changes_sent(sent);
            if let Some(error) = failure {
                return Err(error);
            }
            if (count as i64) < BATCH {
                return Ok(());
            }
        }
    }

    async fn observe_backlog(&mut self) {
        self.backlog_observed = Instant::now();
        if let Ok(age) = self.store.oldest_unsent_age(self.clock.now()).await {
            self.metrics.set_oldest_unsent_age(age);
        }
    }

    /// Observes the backlog unless that was done within `every`; returns how
    /// long until the next observation is due. Under load the relay loops
    /// up to a hundred times a second: a gauge query per loop would cost
    /// about as much as the batch's own, for a number scraped every few
    /// seconds.
    async fn observe_backlog_at_most_every(&mut self, every: Duration) -> Duration {
        if self.backlog_observed.elapsed() >= every {
            self.observe_backlog().await;
        }
        every.saturating_sub(self.backlog_observed.elapsed())
    }

    async fn failed(&mut self, error: &anyhow::Error) {
        self.metrics.observe_relay_error();
        if !self.behind {
            tracing::warn!(error = format!("{error:#}"), "NATS relay: delivery is behind; retrying");
            self.behind = true;
        }
        self.observe_backlog().await;
        tokio::time::sleep(RETRY_AFTER).await;
    }

    fn caught_up(&mut self) {
        if self.behind {
            tracing::info!("NATS relay: delivering again");
            self.behind = false;
        }
    }
}

/// Connects to NATS and makes sure the stream exists.
async fn connect(settings: &RelaySettings) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name("draft-publisher")
        .connection_timeout(ACK_TIMEOUT)
        .retry_on_initial_connect()
        .connect(settings.nats_url.as_str())
        .await
        .context("connecting to NATS")?;
    let mut jetstream = jetstream::new(client);
    jetstream.set_timeout(ACK_TIMEOUT);
    let config = stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECTS.to_owned()],
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    };
    let stream = jetstream.get_or_create_stream(config).await.context("creating the JetStream stream")?;
    let window = stream.cached_info().config.duplicate_window;
    if window < settings.duplicate_window {
        tracing::warn!(
            stream = STREAM,
            ?window,
            wanted = ?settings.duplicate_window,
            "the stream's duplicate window is shorter than the relay's resend horizon"
        );
    }
    tracing::info!(stream = STREAM, "NATS relay connected");
    Ok(jetstream)
}
