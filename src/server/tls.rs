//! TLS for the gRPC listener (rustls): the server's certificate chain and key
//! from PEM files and, for mutual TLS, the CA that client certificates must
//! chain to (clients without one are refused during the handshake).

use std::{fmt, path::Path, time::Duration};

use anyhow::Context;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// How long a connection may take to complete its TLS handshake; a peer
/// that stalls it is disconnected rather than holding a connection forever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM contents, read once at start-up.
#[derive(Clone)]
pub struct TlsSettings {
    pub certificate_chain_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
    /// Set for mutual TLS: client certificates are required and must chain
    /// to one of these CA certificates.
    pub client_ca_pem: Option<Vec<u8>>,
    pub handshake_timeout: Duration,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("private_key_pem", &"<redacted>")
            .field("mutual", &self.client_ca_pem.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the TLS {what} {}", path.display()))
}

impl TlsSettings {
    pub fn from_files(
        certificate: &Path,
        private_key: &Path,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            certificate_chain_pem: read(certificate, "certificate")?,
            private_key_pem: read(private_key, "private key")?,
            client_ca_pem: client_ca.map(|path| read(path, "client CA")).transpose()?,
            handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
        })
    }

    pub(super) fn server_config(&self) -> ServerTlsConfig {
        let identity = Identity::from_pem(&self.certificate_chain_pem, &self.private_key_pem);
        let config = ServerTlsConfig::new().identity(identity).timeout(self.handshake_timeout);
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)).client_auth_optional(false),
            None => config,
        }
    }
}
