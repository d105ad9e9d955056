//! A pgbench run summarised as a JSON line shaped like the load runs': its
//! throughput from pgbench's report, latency percentiles from its
//! per-transaction logs (`--log`), failures.

use std::path::PathBuf;

use anyhow::Context as _;
use hdrhistogram::Histogram;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The script's name (naive, single, fastpath).
    #[arg(long)]
    script: String,
    /// The concurrency level this run is the baseline for.
    #[arg(long)]
    concurrency: usize,
    /// pgbench clients (the level, capped by PostgreSQL's connections).
    #[arg(long)]
    clients: usize,
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Drafts seeded per client (the fresh-publish scripts): a client that
    /// made more transactions ran out (`exhausted`).
    #[arg(long)]
    per_client: Option<u64>,
    /// pgbench's standard output.
    #[arg(long)]
    report: PathBuf,
    /// Its per-transaction log files.
    logs: Vec<PathBuf>,
}

pub fn summarise(args: &Args) -> anyhow::Result<serde_json::Value> {
    let report = std::fs::read_to_string(&args.report).context("reading pgbench's report")?;
    let after = |prefix: &str| -> Option<f64> {
        report.lines().find_map(|line| line.strip_prefix(prefix)?.split_whitespace().next()?.parse().ok())
    };
    let tps = after("tps = ").context("no tps in pgbench's report")?;
    let failed = after("number of failed transactions: ").unwrap_or(0.0);
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let mut most_per_client = 0;
    for log in &args.logs {
        let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
        // client_id transaction_no time_us script_no epoch epoch_us
        for line in text.lines() {
            let mut fields = line.split_whitespace().skip(1).map(|v| v.parse::<u64>().ok());
            if let (Some(Some(transaction)), Some(Some(micros))) = (fields.next(), fields.next()) {
                latency_us.saturating_record(micros.max(1));
                most_per_client = most_per_client.max(transaction + 1);
            }
        }
    }
    let millis = |q: f64| latency_us.value_at_quantile(q) as f64 / 1000.0;
    Ok(serde_json::json!({
        "pgbench": args.script,
        "label": "pgbench",
        "round": args.round,
        "concurrency": args.concurrency,
        "clients": args.clients,
        "calls": latency_us.len(),
        "requests_per_s": tps,
        "p50_ms": millis(0.5),
        "p90_ms": millis(0.9),
        "p99_ms": millis(0.99),
        "max_ms": latency_us.max() as f64 / 1000.0,
        "failed": failed,
        "exhausted": args.per_client.is_some_and(|seeded| most_per_client > seeded),
    }))
}
