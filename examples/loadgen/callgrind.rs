//! Server instructions per call, from two callgrind dumps of one server: one
//! taken after a run of `calls_a` calls, one after `calls_b` (the counters
//! zeroed before each). Their difference over `calls_b - calls_a` cancels
//! what every run pays once (connecting, preparing its drafts) and leaves
//! the cost of a call. Instruction counts do not move with the machine's
//! load, so two builds can be compared on a busy machine.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario both runs were of.
    #[arg(long)]
    scenario: String,
    /// Which server (service, floor, ...).
    #[arg(long)]
    label: String,
    #[arg(long)]
    calls_a: u64,
    /// The callgrind dump after the run of `calls_a` calls.
    #[arg(long)]
    dump_a: PathBuf,
    #[arg(long)]
    calls_b: u64,
    #[arg(long)]
    dump_b: PathBuf,
}

/// A dump's total instruction count (its `totals:` or `summary:` line).
fn total(dump: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(dump).with_context(|| format!("reading {}", dump.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("totals:").or_else(|| line.strip_prefix("summary:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no totals in {}", dump.display()))
}

pub fn per_call(args: &Args) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.calls_b > args.calls_a, "calls_b must be more than calls_a");
    let (a, b) = (total(&args.dump_a)?, total(&args.dump_b)?);
    let per_call = (b as f64 - a as f64) / (args.calls_b - args.calls_a) as f64;
    Ok(serde_json::json!({
        "instructions": args.scenario,
        "label": args.label,
        "calls_a": args.calls_a,
        "total_a": a,
        "calls_b": args.calls_b,
        "total_b": b,
        "per_call": per_call,
    }))
}
