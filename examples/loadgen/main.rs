//! Load generator for a running DraftPublisher: drives PublishDraft (and
//! CreateDraft) over gRPC and reports throughput, latency percentiles and
//! errors by status code, as a table or as JSON lines.
//!
//!     cargo run --release --example loadgen -- --addr http://127.0.0.1:50051 \
//!         --scenario fresh,repeat --concurrency 1,8,32,128
//!
//! `scripts/bench.sh` runs it side by side with pgbench; see BENCHMARKS.md.
//! Its subcommands hold the rest of the benchmark's logic, so that the script
//! stays a list of steps: `pgbench` summarises a pgbench run, `callgrind`
//! turns two callgrind dumps into instructions per call, `lag` and
//! `idle-watch` measure the change feed, `median` reads a figure back for the
//! next step, `report` turns one run's JSON lines into BENCHMARKS.md's tables.

mod callgrind;
mod feed;
mod load;
mod pgbench;
mod procfs;
mod report;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use load::{Load, Outcome, Scenario};

/// Callers that publish one draft together in the contended scenario.
const CONTENDERS: usize = 64;

#[derive(Debug, Parser)]
#[command(about = "Drive a running DraftPublisher and measure it", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Summarise a pgbench run as one JSON line shaped like a load run's.
    Pgbench(pgbench::Args),
    /// Server instructions per call from two callgrind dumps, as a JSON line.
    Callgrind(callgrind::Args),
    /// Delivery lag, publish to Watch and to JetStream, at a steady rate.
    Lag(feed::LagArgs),
    /// Server memory and CPU with many idle Watch streams open.
    IdleWatch(feed::IdleArgs),
    /// The median of one figure over a scenario's rounds.
    Median(report::MedianArgs),
    /// Print the markdown tables of one benchmark run's JSON lines.
    Report(report::Args),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// The service's address (only for benchmarking your own deployment).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,

    /// Scenarios to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ScenarioArg::Fresh, ScenarioArg::Repeat, ScenarioArg::Contended, ScenarioArg::Mixed])]
    scenario: Vec<ScenarioArg>,

    /// Concurrent callers, each on its own connection (a sweep when several
    /// are given). The contended scenario always uses 64.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32, 128])]
    concurrency: Vec<usize>,

    /// Calls per run at most, warm-up included (drafts are created for that
    /// many first; in the mixed scenario a create + publish pair counts as
    /// one). A run whose calls run out before its time says so
    /// (`exhausted`).
    #[arg(long, default_value_t = 5000)]
    requests: usize,

    /// Calls made before the clock starts, not counted (none in the
    /// contended scenario).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,

    /// Measured time per run at most, after the warm-up (the contended
    /// scenario runs all its drafts).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Which server this is, for the JSON lines (service, floor, ...).
    #[arg(long, default_value = "service")]
    label: String,

    /// The benchmark round this run belongs to, for the JSON lines.
    #[arg(long, default_value_t = 1)]
    round: u32,

    /// The server's process id (on this machine): adds its peak RSS after
    /// the run to the JSON line.
    #[arg(long)]
    server_pid: Option<u32>,

    /// One JSON object per run instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Fresh,
    Repeat,
    Contended,
    Mixed,
}

impl From<ScenarioArg> for Scenario {
    fn from(arg: ScenarioArg) -> Self {
        match arg {
            ScenarioArg::Fresh => Scenario::Fresh,
            ScenarioArg::Repeat => Scenario::Repeat,
            ScenarioArg::Contended => Scenario::Contended,
            ScenarioArg::Mixed => Scenario::Mixed,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Pgbench(args)) => println!("{}", pgbench::summarise(&args)?),
        Some(Command::Callgrind(args)) => println!("{}", callgrind::per_call(&args)?),
        Some(Command::Lag(args)) => println!("{}", feed::lag(&args).await?),
        Some(Command::IdleWatch(args)) => println!("{}", feed::idle_watch(&args).await?),
        Some(Command::Median(args)) => println!("{:.0}", report::median(&args)?),
        Some(Command::Report(args)) => print!("{}", report::tables(&args)?),
        None => runs(cli.run).await?,
    }
    Ok(())
}

async fn runs(args: Args) -> anyhow::Result<()> {
    if !args.json {
        println!(
            "{:<10} {:>5} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8}  errors",
            "scenario", "conc", "calls", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
    }
    for scenario in args.scenario.iter().copied().map(Scenario::from) {
        // The contended scenario has a fixed number of callers: one run.
        let sweep = if scenario == Scenario::Contended { &[CONTENDERS][..] } else { &args.concurrency };
        for &concurrency in sweep {
            let run = Load {
                endpoint: args.addr.clone(),
                scenario,
                concurrency,
                requests: args.requests,
                warmup: args.warmup,
                duration: args.duration,
            };
            let outcome = load::run(&run).await?;
            if args.json {
                let mut line = json(&run, &outcome);
                line["label"] = args.label.clone().into();
                line["round"] = args.round.into();
                if let Some(pid) = args.server_pid {
                    line["server_peak_rss_mib"] = procfs::memory_mib(pid, "VmHWM")?.into();
                }
                println!("{line}");
            } else {
                println!("{}", row(&run, &outcome));
            }
        }
    }
    Ok(())
}

fn millis(outcome: &Outcome, quantile: f64) -> f64 {
    outcome.latency_us.value_at_quantile(quantile) as f64 / 1000.0
}

fn rate(outcome: &Outcome) -> f64 {
    outcome.calls as f64 / outcome.elapsed.as_secs_f64().max(f64::EPSILON)
}

fn row(run: &Load, outcome: &Outcome) -> String {
    let errors: Vec<_> = outcome.errors.iter().map(|(code, n)| format!("{code}={n}")).collect();
    format!(
        "{:<10} {:>5} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
        run.scenario.name(),
        run.concurrency,
        outcome.calls,
        rate(outcome),
        millis(outcome, 0.5),
        millis(outcome, 0.9),
        millis(outcome, 0.99),
        outcome.latency_us.max() as f64 / 1000.0,
        if errors.is_empty() { "-".to_owned() } else { errors.join(",") },
    )
}

fn json(run: &Load, outcome: &Outcome) -> serde_json::Value {
    serde_json::json!({
        "scenario": run.scenario.name(),
        "concurrency": run.concurrency,
        "calls": outcome.calls,
        "elapsed_s": outcome.elapsed.as_secs_f64(),
        "requests_per_s": rate(outcome),
        "p50_ms": millis(outcome, 0.5),
        "p90_ms": millis(outcome, 0.9),
        "p99_ms": millis(outcome, 0.99),
        "max_ms": outcome.latency_us.max() as f64 / 1000.0,
        "errors": outcome.errors,
        "exhausted": outcome.exhausted,
    })
}
