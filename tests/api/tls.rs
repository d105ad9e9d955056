//! TLS and mutual TLS on the gRPC listener, with certificates generated for
//! each test: a CA, a server certificate for localhost and 127.0.0.1, and
//! client certificates from that CA and from an unrelated one.

use std::{net::SocketAddr, time::Duration};

use draft_publisher::{
    proto::v1 as pb,
    server::{ClientOrganizations, TLS_HANDSHAKE_TIMEOUT, TlsSettings},
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::AsyncReadExt;
use tonic::{
    Code,
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};

use crate::support::*;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn certificate_authority(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate and its private key, both PEM.
struct Leaf {
    certificate: String,
    private_key: String,
}

fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, ca).unwrap();
    Leaf { certificate: certificate.pem(), private_key: key.serialize_pem() }
}

/// The real server with TLS; with `client_ca`, mutual TLS against it.
async fn spawn_tls_app(server: &Leaf, client_ca: Option<&Ca>) -> TestApp {
    spawn_tls_app_with(server, client_ca, TLS_HANDSHAKE_TIMEOUT).await
}

async fn spawn_tls_app_with(server: &Leaf, client_ca: Option<&Ca>, handshake_timeout: Duration) -> TestApp {
    TestApp::builder().tls(tls_settings(server, client_ca, handshake_timeout)).spawn().await
}

fn tls_settings(server: &Leaf, client_ca: Option<&Ca>, handshake_timeout: Duration) -> TlsSettings {
    TlsSettings {
        certificate_chain_pem: server.certificate.clone().into_bytes(),
        private_key_pem: server.private_key.clone().into_bytes(),
        client_ca_pem: client_ca.map(|ca| ca.pem().into_bytes()),
        handshake_timeout,
    }
}

fn server_certificate(ca: &Ca) -> Leaf {
    leaf(ca, &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth)
}

fn tls_endpoint(addr: SocketAddr, trusted: &Ca, identity: Option<&Leaf>) -> Endpoint {
    let mut tls =
        ClientTlsConfig::new().domain_name("localhost").ca_certificate(Certificate::from_pem(trusted.pem()));
    if let Some(client) = identity {
        tls = tls.identity(Identity::from_pem(&client.certificate, &client.private_key));
    }
    Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap()
}

/// A typed client over `endpoint`, connected now.
async fn connect(endpoint: Endpoint) -> TestClient {
    let channel = endpoint.timeout(Duration::from_secs(30)).connect().await.expect("TLS connection");
    TestClient::new(channel)
}

/// Creates a draft over `endpoint`; the error says where it failed.
async fn create_draft_over(endpoint: Endpoint) -> Result<pb::Draft, String> {
    let channel = endpoint
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let answer = TestClient::new(channel).create_draft(complete_draft_request(&new_id())).await;
    answer.map(|answer| answer.draft.expect("a draft")).map_err(|status| format!("call: {status:?}"))
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_ca_and_refuses_plaintext() {
    let ca = certificate_authority("DraftPublisher test CA");
    let app = spawn_tls_app(&server_certificate(&ca), None).await;

    let plaintext = Endpoint::from_shared(format!("http://{}", app.addr)).unwrap();
    let refused = create_draft_over(plaintext).await;
    let served = create_draft_over(tls_endpoint(app.addr, &ca, None)).await;

    assert!(refused.is_err(), "plaintext was served: {refused:?}");
    assert_eq!(served.expect("TLS client served").version, 1);
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let ca = certificate_authority("DraftPublisher test CA");
    let other_ca = certificate_authority("Some other CA");
    let app = spawn_tls_app(&server_certificate(&ca), Some(&ca)).await;
    let client = leaf(&ca, &["billing-service"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = leaf(&other_ca, &["billing-service"], ExtendedKeyUsagePurpose::ClientAuth);

    let without_certificate = create_draft_over(tls_endpoint(app.addr, &ca, None)).await;
    let foreign_certificate = create_draft_over(tls_endpoint(app.addr, &ca, Some(&stranger))).await;
    let valid_certificate = create_draft_over(tls_endpoint(app.addr, &ca, Some(&client))).await;

    // The handshake itself refuses them, with the TLS alert that says why.
    let refusal = without_certificate.expect_err("served without a client certificate");
    assert!(refusal.contains("CertificateRequired"), "{refusal}");
    let refusal = foreign_certificate.expect_err("served a certificate from another CA");
    assert!(refusal.contains("UnknownCA"), "{refusal}");
    assert_eq!(valid_certificate.expect("client with a valid certificate served").version, 1);
}

#[tokio::test]
async fn a_peer_that_stalls_the_tls_handshake_is_disconnected() {
    let ca = certificate_authority("DraftPublisher test CA");
    let app = spawn_tls_app_with(&server_certificate(&ca), None, Duration::from_millis(200)).await;

    // Connected, but never sends a ClientHello.
    let mut stalled = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(60), stalled.read(&mut buffer)).await;

    let closed = matches!(read, Ok(Ok(0)) | Ok(Err(_)));
    assert!(closed, "the stalled connection stayed open: {read:?}");
    let served = create_draft_over(tls_endpoint(app.addr, &ca, None)).await;
    assert_eq!(served.expect("others are still served").version, 1);
}

/// A TLS client of our own making: it completes the TLS handshake and then
/// sends what the test says (TLS 1.3, as rustls prefers).
async fn tls_connection(
    addr: SocketAddr,
    trusted: &Ca,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls::{self, pki_types::ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("TLS handshake")
}

#[tokio::test]
async fn a_peer_silent_after_the_tls_handshake_is_disconnected() {
    let ca = certificate_authority("DraftPublisher test CA");
    let server = server_certificate(&ca);
    let tls = TlsSettings {
        certificate_chain_pem: server.certificate.into_bytes(),
        private_key_pem: server.private_key.into_bytes(),
        client_ca_pem: None,
        handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
    };
    let app = TestApp::builder()
        .tls(tls)
        .server_settings(|s| s.http2.handshake_timeout = Duration::from_millis(500))
        .spawn()
        .await;

    // Through TLS, then no HTTP/2 preface: nothing but a descriptor held.
    let mut silent = tls_connection(app.addr, &ca).await;
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while matches!(silent.read(&mut buffer).await, Ok(n) if n > 0) {}
    });

    assert!(closed.await.is_ok(), "the connection silent after TLS stayed open");
    let served = create_draft_over(tls_endpoint(app.addr, &ca, None)).await;
    assert_eq!(served.expect("real clients are still served").version, 1);
}

#[tokio::test]
async fn client_certificates_act_only_for_the_organisations_listed_for_their_cn() {
    let ca = certificate_authority("DraftPublisher test CA");
    let (org_a, org_b) = (new_id(), new_id());
    let lines = format!("# clients by CN\nbilling-service org={org_a}\nOps Console org=*\n");
    let client_orgs = ClientOrganizations::parse(&lines, "test map").unwrap();
    let tls = tls_settings(&server_certificate(&ca), Some(&ca), TLS_HANDSHAKE_TIMEOUT);
    let app =
        TestApp::builder().tls(tls).server_settings(|s| s.tls_client_orgs = Some(client_orgs)).spawn().await;
    let as_client = |cn: &str| {
        let identity = leaf(&ca, &[cn], ExtendedKeyUsagePurpose::ClientAuth);
        connect(tls_endpoint(app.addr, &ca, Some(&identity)))
    };
    let billing = as_client("billing-service").await;
    let ops = as_client("Ops Console").await;
    let unlisted = as_client("reporting-service").await;

    billing.complete_draft(&org_a).await;
    let foreign = billing.create_draft(complete_draft_request(&org_b)).await.unwrap_err();
    ops.complete_draft(&org_b).await;
    let stranger = unlisted.create_draft(complete_draft_request(&org_a)).await.unwrap_err();
    let stranger_reads =
        unlisted.list_drafts(list_request(&org_a, 0, "", Default::default())).await.unwrap_err();

    assert_error(&foreign, Code::PermissionDenied, "ORGANIZATION_NOT_ALLOWED");
    assert_error(&stranger, Code::PermissionDenied, "ORGANIZATION_NOT_ALLOWED");
    assert!(stranger.message().contains("reporting-service"), "{stranger:?}");
    assert_error(&stranger_reads, Code::PermissionDenied, "ORGANIZATION_NOT_ALLOWED");
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 2);
}
