//! `serve` flags as an operator writes them, turned into server settings.

use std::time::Duration;

use clap::Parser;
use draft_publisher::config::{Cli, Command, ServeArgs};

fn serve_args(flags: &[&str]) -> Result<ServeArgs, clap::Error> {
    let cli = Cli::try_parse_from(["draft-publisher", "serve"].iter().chain(flags))?;
    match cli.command {
        Command::Serve(args) => Ok(args),
        other => panic!("not serve: {other:?}"),
    }
}

#[test]
fn operating_flags_become_server_settings() {
    let folder = tempfile::tempdir().unwrap();
    let path = |name: &str| folder.path().join(name).display().to_string();
    std::fs::write(path("tokens"), "# comment\n\nfrom-file\n").unwrap();
    for name in ["server.pem", "server.key", "ca.pem"] {
        std::fs::write(path(name), format!("{name} contents")).unwrap();
    }
    let args = serve_args(&[
        "--auth-tokens-file",
        &path("tokens"),
        "--auth-tokens",
        "inline-one,inline-two",
        "--request-timeout",
        "2s",
        "--max-concurrent-calls",
        "8",
        "--http2-keepalive-interval",
        "30s",
        "--http2-keepalive-timeout",
        "5s",
        "--tls-cert",
        &path("server.pem"),
        "--tls-key",
        &path("server.key"),
        "--tls-client-ca",
        &path("ca.pem"),
        "--metrics-addr",
        "127.0.0.1:9090",
    ])
    .unwrap();

    let settings = args.server_settings().unwrap();

    let tokens = settings.auth.expect("tokens configured");
    for token in ["from-file", "inline-one", "inline-two"] {
        assert!(tokens.accepts(token), "{token}");
    }
    assert!(!format!("{args:?}").contains("inline-one"), "a token shows in the configuration's Debug");
    assert_eq!(settings.request_timeout, Duration::from_secs(2));
    assert_eq!(settings.max_concurrent_calls, 8);
    assert_eq!(settings.http2_keepalive_interval, Duration::from_secs(30));
    assert_eq!(settings.http2_keepalive_timeout, Duration::from_secs(5));
    let tls = settings.tls.expect("TLS configured");
    assert_eq!(tls.certificate_chain_pem, b"server.pem contents");
    assert_eq!(tls.client_ca_pem.as_deref(), Some(&b"ca.pem contents"[..]));
    assert_eq!(args.metrics_addr, Some("127.0.0.1:9090".parse().unwrap()));
}

#[test]
fn defaults_are_open_plaintext_without_metrics() {
    let args = serve_args(&[]).unwrap();

    let settings = args.server_settings().unwrap();

    assert!(settings.auth.is_none());
    assert!(settings.tls.is_none());
    assert!(args.metrics_addr.is_none());
    assert_eq!(settings.request_timeout, Duration::from_secs(15));
    assert_eq!(settings.max_concurrent_calls, 256);
    assert_eq!(settings.max_message_size, 1024 * 1024);
}

#[test]
fn inconsistent_operating_flags_are_refused() {
    let cases: [&[&str]; 4] = [
        &["--tls-cert", "server.pem"],
        &["--tls-key", "server.key"],
        &["--tls-client-ca", "ca.pem"],
        &["--max-concurrent-calls", "0"],
    ];
    for flags in cases {
        assert!(serve_args(flags).is_err(), "{flags:?} accepted");
    }
    let missing_file = serve_args(&["--auth-tokens-file", "/nonexistent/tokens"]).unwrap();
    assert!(missing_file.server_settings().is_err());
}

#[test]
fn a_malformed_client_organisations_line_is_refused_naming_the_line() {
    let folder = tempfile::tempdir().unwrap();
    let path = |name: &str| folder.path().join(name).display().to_string();
    for name in ["server.pem", "server.key", "ca.pem"] {
        std::fs::write(path(name), format!("{name} contents")).unwrap();
    }
    std::fs::write(path("clients"), "# clients\nbilling-service org=*\nreporting-service\n").unwrap();
    let args = serve_args(&[
        "--tls-cert",
        &path("server.pem"),
        "--tls-key",
        &path("server.key"),
        "--tls-client-ca",
        &path("ca.pem"),
        "--tls-client-orgs",
        &path("clients"),
    ])
    .unwrap();

    let error = args.server_settings().unwrap_err().to_string();

    assert!(error.contains("clients, line 3: expected `CN org="), "{error}");
}

#[test]
fn client_organisations_need_mutual_tls() {
    let refused = serve_args(&["--tls-client-orgs", "clients"]).unwrap_err();

    assert_eq!(refused.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{refused}");
}
