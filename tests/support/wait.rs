//! Waiting on real conditions (a status, a lock wait, a counter), bounded by
//! a real deadline, instead of sleeping for a guessed time.

use std::time::Duration;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Checks `condition` until it holds; panics naming `what` when it has not
/// within `within`. A check still running at the deadline is cancelled, so
/// the wait never outlasts it.
pub async fn until<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_some(what, within, || {
        let check = condition();
        async move { check.await.then_some(()) }
    })
    .await
}

/// Like [`until`], for a check that yields a value once it holds.
pub async fn until_some<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let polled = tokio::time::timeout(within, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(POLL).await;
        }
    });
    polled.await.unwrap_or_else(|_| panic!("{what}: not within {within:?}"))
}

/// Reads a value until it equals `wanted`; panics with the last reading
/// when it has not within `within`.
pub async fn until_reads<T, F, Fut>(what: &str, within: Duration, wanted: T, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut last = None;
    let polled = tokio::time::timeout(within, async {
        loop {
            let value = read().await;
            if value == wanted {
                return;
            }
            last = Some(value);
            tokio::time::sleep(POLL).await;
        }
    });
    if polled.await.is_err() {
        panic!("{what}: not {wanted:?} within {within:?}; last read {last:?}");
    }
}
