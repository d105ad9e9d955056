//! The contract, as executable specifications: every RPC over real gRPC to
//! the real server, each test on a PostgreSQL database of its own.

mod helpers;
#[path = "../support/mod.rs"]
mod support;

mod create_draft;
mod database_outage;
mod get_draft_and_event;
mod list_drafts;
mod loadgen;
mod publish_draft;
mod races;
mod server;
mod update_draft;
