//! The sequencer: positions committed changes in passes (see
//! `Store::sequence_changes` for why that makes the order gap-free), woken by
//! this replica's publishes, by the next scheduled release, and by a poll
//! that catches work from replicas that died before their pass.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use super::{Feed, POLL_INTERVAL};
use crate::{
    domain::{Clock, Timestamp},
    shutdown::stopped,
    store::Store,
};

/// Changes positioned per pass: bounds one transaction's work.
const BATCH: i64 = 1_000;

pub(super) async fn run(feed: Feed, store: Store, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut wait = Duration::ZERO;
    let mut failing = false;
    loop {
        tokio::select! {
            () = feed.inner.changes_written.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = stopped(&mut stop) => return,
        }
        let now = clock.now();
        match store.sequence_changes(now, BATCH).await {
            Ok(pass) => {
                if failing {
                    tracing::info!("feed sequencer: database reachable again");
                    failing = false;
                }
                feed.announce(&pass.positioned);
                wait = if pass.count as i64 == BATCH {
                    Duration::ZERO
                } else {
                    pass.next_release.map_or(POLL_INTERVAL, |due| until(now, due).min(POLL_INTERVAL))
                };
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "feed sequencer: cannot position changes; retrying");
                    failing = true;
                }
                wait = POLL_INTERVAL;
            }
        }
    }
}

/// Time from `now` to `due`, zero when it has passed.
fn until(now: Timestamp, due: Timestamp) -> Duration {
    (due.as_datetime() - now.as_datetime()).try_into().unwrap_or(Duration::ZERO)
}
