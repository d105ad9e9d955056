//! Callers as real services would write them: bounded retries of failed
//! calls on the next replica, with back-off, and counts of everything that
//! happened, printed at the end of each scenario.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use draft_publisher::proto::v1 as pb;
use tonic::{Code, Status};

use crate::support::{TestClient, complete_draft_request, new_id, publish_request, service_reason};

/// Attempts per logical call; with the back-off below, about 20 s in all.
pub const MAX_ATTEMPTS: u32 = 30;
/// Longest a single attempt may take before the caller gives up on it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);

/// Whether a caller should try again: transport failures, and the service's
/// own "safe to retry" answers.
pub fn is_retryable(status: &Status) -> bool {
    match service_reason(status) {
        None => true,
        Some(reason) => {
            matches!(
                reason.as_str(),
                "DATABASE_UNAVAILABLE" | "CONCURRENT_MODIFICATION" | "DEADLINE_EXCEEDED"
            )
        }
    }
}

/// What a scenario's callers saw.
#[derive(Default)]
pub struct Stats {
    calls: AtomicU64,
    ok: AtomicU64,
    retries: AtomicU64,
    gave_up: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn call(&self) {
        self.calls.fetch_add(1, Relaxed);
    }

    pub fn ok(&self) {
        self.ok.fetch_add(1, Relaxed);
    }

    pub fn oks(&self) -> u64 {
        self.ok.load(Relaxed)
    }

    pub fn gave_up(&self) -> u64 {
        self.gave_up.load(Relaxed)
    }

    /// Counts a failed call under its code, marking the service's own errors
    /// with their reason.
    pub fn error(&self, status: &Status) {
        let key = match service_reason(status) {
            Some(reason) => format!("{:?} {reason}", status.code()),
            None => format!("{:?} (transport)", status.code()),
        };
        *self.errors.lock().unwrap().entry(key).or_default() += 1;
    }

    /// Errors by code (and reason), for assertions.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap().clone()
    }

    /// Prints the counts (nextest shows the output of passing tests with
    /// `--success-output immediate`).
    pub fn print(&self, scenario: &str) {
        let line = format!(
            "[chaos] {scenario}: calls={} ok={} retries={} gave_up={} errors={:?}",
            self.calls.load(Relaxed),
            self.ok.load(Relaxed),
            self.retries.load(Relaxed),
            self.gave_up.load(Relaxed),
            self.errors()
        );
        println!("{line}");
    }
}

/// Makes a call with bounded retries; attempt `n` goes to client
/// `first + n` (another replica), after a back-off of 25 ms doubling to 1 s.
pub async fn with_retries<T, F, Fut>(
    stats: &Stats,
    clients: &[TestClient],
    first: usize,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut(TestClient) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut last = Status::unknown("no attempt made");
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            stats.retries.fetch_add(1, Relaxed);
            let back_off = Duration::from_millis(25 << attempt.min(6)).min(Duration::from_secs(1));
            tokio::time::sleep(back_off).await;
        }
        stats.call();
        let client = clients[(first + attempt as usize) % clients.len()].clone();
        let result = tokio::time::timeout(ATTEMPT_TIMEOUT, call(client))
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("the caller gave up on the attempt")));
        match result {
            Ok(response) => {
                stats.ok();
                return Ok(response);
            }
            Err(status) => {
                stats.error(&status);
                if !is_retryable(&status) {
                    return Err(status);
                }
                last = status;
            }
        }
    }
    stats.gave_up.fetch_add(1, Relaxed);
    Err(last)
}

/// A complete draft's CreateDraft request, with an idempotency key so that
/// retries meet one draft.
pub fn create_request(organization_id: &str) -> pb::CreateDraftRequest {
    pb::CreateDraftRequest { request_id: new_id(), ..complete_draft_request(organization_id) }
}

/// Creates a draft, retrying as needed; panics if that is impossible.
pub async fn create_draft(stats: &Stats, clients: &[TestClient], first: usize, org: &str) -> String {
    let request = create_request(org);
    let created = with_retries(stats, clients, first, |client| {
        let request = request.clone();
        async move { client.create_draft(request).await }
    })
    .await;
    created.unwrap_or_else(|s| panic!("create failed for good: {s:?}")).draft.unwrap().id
}

/// Publishes a draft now, retrying as needed.
pub async fn publish(
    stats: &Stats,
    clients: &[TestClient],
    first: usize,
    org: &str,
    draft_id: &str,
) -> Result<pb::PublishDraftResponse, Status> {
    publish_with(stats, clients, first, publish_request(org, draft_id)).await
}

/// Sends a PublishDraft request, retrying as needed.
pub async fn publish_with(
    stats: &Stats,
    clients: &[TestClient],
    first: usize,
    request: pb::PublishDraftRequest,
) -> Result<pb::PublishDraftResponse, Status> {
    with_retries(stats, clients, first, |client| {
        let request = request.clone();
        async move { client.publish_draft(request).await }
    })
    .await
}

/// Is the code one a caller could be told for a cancelled call: the
/// transport's (no reason), or the server's answer to a deadline that ran
/// out (reason `DEADLINE_EXCEEDED`)?
pub fn is_cancellation(status: &Status) -> bool {
    match service_reason(status) {
        None => matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        Some(reason) => status.code() == Code::DeadlineExceeded && reason == "DEADLINE_EXCEEDED",
    }
}

/// A small deterministic generator (SplitMix64), so scenarios need no
/// random-number crate and a failure can be replayed from its seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
