//! The load generator (`examples/loadgen`) keeps working: each scenario runs
//! for a moment against the real server. A smoke test, so nothing is timed.

#[path = "../../examples/loadgen/load.rs"]
mod load;

use std::time::Duration;

use load::{Load, Scenario};

use crate::support::TestApp;

#[tokio::test]
async fn every_loadgen_scenario_is_answered_without_errors() {
    let app = TestApp::spawn().await;
    for scenario in [Scenario::Fresh, Scenario::Repeat, Scenario::Contended, Scenario::Mixed] {
        let run = Load {
            endpoint: format!("http://{}", app.addr),
            scenario,
            concurrency: 4,
            requests: 40,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(2),
        };

        let outcome = load::run(&run).await.expect("drafts prepared");

        assert!(outcome.calls > 0, "{}: no calls", scenario.name());
        assert_eq!(outcome.latency_us.len(), outcome.calls, "{}: a latency per call", scenario.name());
        assert!(
            outcome.errors.is_empty(),
            "{}: {:?} after {:?}",
            scenario.name(),
            outcome.errors,
            outcome.elapsed
        );
    }
}
