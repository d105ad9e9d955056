//! The contract, as executable specifications: every RPC over real gRPC to
//! the real server, each test on a PostgreSQL database of its own.

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod auth;
mod configuration;
mod create_draft;
mod database_outage;
mod event_changes;
mod failover;
mod get_draft_and_event;
mod hostile_http2;
mod hostile_input;
mod limits;
mod list_drafts;
mod loadgen;
mod logs;
mod malformed_messages;
mod metrics;
mod migrations;
mod network_faults;
mod pooler;
mod publish_draft;
mod races;
mod relay;
mod scoped_credentials;
mod server;
mod tenant_isolation;
mod tls;
mod traces;
mod update_draft;
