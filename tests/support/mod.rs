//! Test support shared by the integration test binaries.
#![allow(dead_code)]

pub mod pg_cluster;
