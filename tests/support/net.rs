//! Ports and gRPC connections on 127.0.0.1.

use std::{net::SocketAddr, time::Duration};

use tonic::transport::{Channel, Endpoint};

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}")).unwrap()
}

/// A plaintext connection of its own to `addr`, established now.
pub async fn channel(addr: SocketAddr) -> Channel {
    endpoint(addr).connect().await.unwrap_or_else(|e| panic!("connect to {addr}: {e:?}"))
}

/// A plaintext channel to `addr` that connects on first use and reconnects
/// after failures: for servers that may be down, restarting or TLS-only.
pub fn lazy_channel(addr: SocketAddr) -> Channel {
    endpoint(addr).connect_timeout(Duration::from_secs(1)).connect_lazy()
}

/// Whether a new connection to `addr` is refused.
pub async fn connection_refused(addr: SocketAddr) -> bool {
    endpoint(addr).connect().await.is_err()
}
