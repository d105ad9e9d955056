//! Chaos: the real `draft-publisher` binary as separate processes — several
//! replicas — against a private PostgreSQL cluster, while replicas are
//! killed and terminated, the database restarts and callers cancel. After
//! each scenario, `draft-publisher audit` must find the database clean and
//! every caller must have been told one event id per draft.
//!
//! Each scenario prints its counts (calls, retries, errors by code); see them
//! with `cargo nextest run --test chaos --success-output immediate`.

#[path = "../support/mod.rs"]
mod support;

mod callers;
mod harness;

mod cancellation;
mod fan_out;
mod feed_delivery;
mod sigterm;
mod steady_load;
