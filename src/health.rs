//! `grpc.health.v1.Health`: SERVING while the database answers, NOT_SERVING
//! while it does not and once shutdown has begun. A background probe keeps
//! the status current, so Watch streams see every change.

use std::time::Duration;

use anyhow::Context;

use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    api::DraftPublisherApi, config::HealthCheckArgs, proto::v1::draft_publisher_server::DraftPublisherServer,
    store::Store,
};

/// The names the contract reports under: the whole server (""), and the
/// service as the generated code names it.
const NAMES: [&str; 2] = ["", <DraftPublisherServer<DraftPublisherApi> as NamedService>::NAME];

/// Sets the status of both names the contract reports.
pub async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// Probes the database every `interval` until `stop` changes, then reports
/// NOT_SERVING for good and ends the Watch streams. A probe that takes
/// longer than `interval` counts as a failure, so an outage shows within two
/// intervals.
pub async fn probe_database(
    mut reporter: HealthReporter,
    store: Store,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticks.tick() => {}
        }
        let status =
            if store.ping(interval).await { ServingStatus::Serving } else { ServingStatus::NotServing };
        if *stop.borrow() {
            break;
        }
        // Only a change is reported: tonic-health sends every report to the
        // Watch streams, and a repeated NOT_SERVING queued during an outage
        // would reach a watcher after the database is back.
        if last != Some(status) {
            tracing::info!(?status, "database health changed");
            report(&reporter, status).await;
            last = Some(status);
        }
    }
    report(&reporter, ServingStatus::NotServing).await;
    // Watchers have seen NOT_SERVING. Clearing a status drops its sender,
    // which ends their streams (they would otherwise keep the graceful
    // shutdown waiting until the grace period runs out); setting it again
    // makes a fresh one, so Check keeps answering NOT_SERVING.
    for name in NAMES {
        reporter.clear_service_status(name).await;
        reporter.set_service_status(name, ServingStatus::NotServing).await;
    }
}

/// `draft-publisher health-check`: asks the server at `args.addr` and
/// succeeds only when the answer is SERVING.
pub async fn check(args: &HealthCheckArgs) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let ask = async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", args.addr))?.connect().await?;
        let request = HealthCheckRequest { service: args.service.clone() };
        let answer = HealthClient::new(channel).check(request).await?.into_inner();
        anyhow::Ok(answer.status())
    };
    let status = tokio::time::timeout(args.timeout, ask)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {} within {:?}", args.addr, args.timeout))?
        .with_context(|| format!("asking {} for its health", args.addr))?;
    println!("{}", status.as_str_name());
    anyhow::ensure!(
        status == tonic_health::pb::health_check_response::ServingStatus::Serving,
        "{} is not serving",
        args.addr
    );
    Ok(())
}
