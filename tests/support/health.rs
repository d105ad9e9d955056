//! `grpc.health.v1.Health` as probes see it: Check for one answer, Watch
//! for every change.

use std::{net::SocketAddr, time::Duration};

use draft_publisher::proto::v1::draft_publisher_server::DraftPublisherServer;
use tonic::{Status, Streaming, server::NamedService, transport::Channel};
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_client::HealthClient};

use crate::support::{TestApp, net, wait::until};

/// The name the service's own health is reported under, from the
/// generated server.
pub const SERVICE: &str = <DraftPublisherServer<()> as NamedService>::NAME;

/// Both names the contract reports: the server as a whole, and the service.
pub const NAMES: [&str; 2] = ["", SERVICE];

/// Check, over `channel`.
pub async fn check(channel: Channel, service: &str) -> Result<ServingStatus, Status> {
    let request = HealthCheckRequest { service: service.to_owned() };
    let answer = HealthClient::new(channel).check(request).await?;
    Ok(answer.into_inner().status())
}

/// What Check answers for `service`, on a connection of its own.
pub async fn health_status(addr: SocketAddr, service: &str) -> ServingStatus {
    let answer = check(net::channel(addr).await, service).await;
    answer.unwrap_or_else(|s| panic!("health Check of {service:?}: {s:?}"))
}

/// Waits until Check answers `wanted` for both names, for at most `within`.
pub async fn until_health(addr: SocketAddr, wanted: ServingStatus, within: Duration) {
    until(&format!("health {wanted:?}"), within, || async {
        for name in NAMES {
            if health_status(addr, name).await != wanted {
                return false;
            }
        }
        true
    })
    .await;
}

/// An open Watch stream. Tests wait for the status they want rather than
/// take the next one: on a loaded machine a probe slower than its interval
/// reads as a short outage, and a watcher sees both changes.
pub struct HealthWatch {
    stream: Streaming<HealthCheckResponse>,
}

impl HealthWatch {
    pub async fn open(channel: Channel, service: &str) -> Self {
        let request = HealthCheckRequest { service: service.to_owned() };
        let answer = HealthClient::new(channel).watch(request).await;
        Self { stream: answer.unwrap_or_else(|s| panic!("health Watch of {service:?}: {s:?}")).into_inner() }
    }

    /// The next status streamed; `None` when the stream ended.
    async fn streamed(&mut self) -> Option<ServingStatus> {
        let next = self.stream.message().await;
        next.unwrap_or_else(|s| panic!("health Watch failed: {s:?}")).map(|answer| answer.status())
    }

    /// Every status streamed until the stream ends, which must be within
    /// `within`.
    pub async fn until_ended(&mut self, within: Duration) -> Vec<ServingStatus> {
        let mut statuses = Vec::new();
        let ended = tokio::time::timeout(within, async {
            while let Some(status) = self.streamed().await {
                statuses.push(status);
            }
        });
        ended.await.unwrap_or_else(|_| panic!("health Watch still open after {within:?}"));
        statuses
    }

    /// Whether the stream is still open, neither ended nor failed, after
    /// reading it for `during`.
    pub async fn open_throughout(&mut self, during: Duration) -> bool {
        let read =
            tokio::time::timeout(during, async { while let Ok(Some(_)) = self.stream.message().await {} });
        read.await.is_err()
    }

    /// Reads statuses until `wanted`, for at most `within`.
    pub async fn until(&mut self, wanted: ServingStatus, within: Duration) {
        let reached = tokio::time::timeout(within, async {
            while let Some(status) = self.streamed().await {
                if status == wanted {
                    return;
                }
            }
            panic!("health Watch ended before {wanted:?}");
        });
        reached.await.unwrap_or_else(|_| panic!("health Watch did not stream {wanted:?} within {within:?}"));
    }
}

impl TestApp {
    /// Waits until health reports SERVING for both names: the first probe of
    /// the database has succeeded.
    pub async fn until_serving(&self) {
        until_health(self.addr, ServingStatus::Serving, Duration::from_secs(10)).await;
    }

    /// A Watch of `service`'s health on a connection of its own.
    pub async fn watch_health(&self, service: &str) -> HealthWatch {
        HealthWatch::open(self.channel().await, service).await
    }
}
