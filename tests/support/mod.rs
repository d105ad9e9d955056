//! Test support shared by every integration test binary: the real server
//! over real connections, each test on a database of its own. Include it
//! with `#[path = "../support/mod.rs"] mod support;` and
//! `use crate::support::*;`.
//!
//! - [`app`]: `TestApp`, the server on a fresh database with a typed client,
//!   built with `TestApp::builder()`; [`client`]: that typed client.
//! - [`requests`]: request builders; [`assertions`]: the contract's error
//!   details.
//! - [`database`], [`pg_cluster`]: a database of the test's own, or a private
//!   cluster for tests that stop or restart PostgreSQL; [`pgbouncer`]: a
//!   private transaction pooler in front of it; [`fault_proxy`]: a TCP proxy
//!   that breaks the network between the server and its database.
//! - [`locks`]: rows held by the test and calls seen waiting on them;
//!   [`rows`]: rows written and counted behind the service's back.
//! - [`feed`]: the change feed as consumers read it (List pages, Watch
//!   streams with deadlines).
//! - [`nats`]: private NATS JetStream servers and the stream as consumers
//!   read it.
//! - [`health`], [`metrics`]: what operators see; [`collector`]: a fake
//!   OpenTelemetry collector receiving the server's spans.
//! - [`http2`]: hostile HTTP/2 peers, raw frames, and the victim they aim at.
//! - [`wait`]: bounded waits on real conditions; [`net`], [`binary`]:
//!   ports, connections and the `draft-publisher` binary.

// Each binary uses part of the module.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod assertions;
pub mod binary;
pub mod client;
pub mod collector;
pub mod database;
pub mod fault_proxy;
pub mod feed;
pub mod health;
pub mod http2;
pub mod locks;
pub mod metrics;
pub mod nats;
pub mod net;
pub mod pg_cluster;
pub mod pgbouncer;
pub mod requests;
pub mod rows;
pub mod server;
pub mod wait;

pub use app::{TestApp, TestAppBuilder, TestClock};
pub use assertions::{assert_error, assert_invalid_field, service_reason};
pub use client::TestClient;
pub use database::TestDatabase;
pub use feed::{DELIVERY_WITHIN, Watcher, list_changes_request, unsent_changes};
pub use net::{channel, free_port};
pub use requests::*;
pub use server::TestServer;
pub use wait::until;
