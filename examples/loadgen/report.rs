//! BENCHMARKS.md's tables from the JSON lines of one `scripts/bench.sh` run:
//! every figure is the median over the run's rounds with its range
//! (min–max), every ratio the median of the per-round ratios (a round runs
//! the service and its baseline back to back, so their ratio is fairer than
//! a ratio of medians taken minutes apart).

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use anyhow::Context as _;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The JSON lines (`target/bench/results.jsonl`).
    results: PathBuf,
}

/// (kind of record, its name, label, concurrency)
type Key = (&'static str, String, String, u64);

struct Results {
    /// Every run by key, then by round.
    runs: BTreeMap<Key, BTreeMap<u64, Value>>,
    levels: Vec<u64>,
    other: Vec<Value>,
}

const KINDS: [&str; 3] = ["scenario", "pgbench", "instructions"];

impl Results {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut runs: BTreeMap<Key, BTreeMap<u64, Value>> = BTreeMap::new();
        let mut levels = Vec::new();
        let mut other = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
            let Some(kind) = KINDS.iter().copied().find(|k| value.get(k).is_some()) else {
                other.push(value);
                continue;
            };
            let name = value[kind].as_str().unwrap_or_default().to_owned();
            let label = value["label"].as_str().unwrap_or("service").to_owned();
            let concurrency = value["concurrency"].as_u64().unwrap_or_default();
            let round = value["round"].as_u64().unwrap_or(1);
            if kind == "scenario"
                && label == "service"
                && name != "contended"
                && !levels.contains(&concurrency)
            {
                levels.push(concurrency);
            }
            runs.entry((kind, name, label, concurrency)).or_default().insert(round, value);
        }
        Ok(Self { runs, levels, other })
    }

    fn rounds(
        &self,
        kind: &'static str,
        name: &str,
        label: &str,
        level: u64,
    ) -> Option<&BTreeMap<u64, Value>> {
        self.runs.get(&(kind, name.to_owned(), label.to_owned(), level))
    }

    /// Median (min–max) of a field over the rounds.
    fn figure(&self, kind: &'static str, name: &str, label: &str, level: u64, field: &str) -> Option<Spread> {
        let rounds = self.rounds(kind, name, label, level)?;
        Spread::of(rounds.values().filter_map(|v| v[field].as_f64()).collect())
    }

    /// Median (min–max) of the per-round ratios of a's and b's throughput.
    fn ratio(
        &self,
        a: (&'static str, &str, &str),
        b: (&'static str, &str, &str),
        level: u64,
    ) -> Option<Spread> {
        let (a, b) = (self.rounds(a.0, a.1, a.2, level)?, self.rounds(b.0, b.1, b.2, level)?);
        let rate = |v: &Value| v["requests_per_s"].as_f64();
        Spread::of(
            a.iter()
                .filter_map(|(round, x)| Some(rate(x)? / rate(b.get(round)?)?))
                .filter(|r| r.is_finite())
                .collect(),
        )
    }

    /// Calls that failed in any round, by code.
    fn errors(&self, name: &str, label: &str, level: u64) -> String {
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for run in self.rounds("scenario", name, label, level).into_iter().flat_map(|r| r.values()) {
            for (code, n) in run["errors"].as_object().into_iter().flatten() {
                *total.entry(code.clone()).or_default() += n.as_u64().unwrap_or_default();
            }
            if run["exhausted"].as_bool() == Some(true) {
                *total.entry("short run (drafts ran out)".to_owned()).or_default() += 1;
            }
        }
        let parts: Vec<String> = total.iter().map(|(code, n)| format!("{code} {n}")).collect();
        if parts.is_empty() { "-".to_owned() } else { format!("{name}: {}", parts.join(", ")) }
    }
}

/// A median and the range it came from.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Self { median, min: values[0], max: values[n - 1], n })
    }

    fn show(spread: Option<Self>, decimals: usize) -> String {
        match spread {
            None => "-".to_owned(),
            Some(s) if s.n == 1 => format!("{:.decimals$}", s.median),
            Some(s) => format!("{:.decimals$} ({:.decimals$}–{:.decimals$})", s.median, s.min, s.max),
        }
    }
}

pub fn tables(args: &Args) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.results).context("reading the results")?;
    let results = Results::parse(&text)?;
    let mut out = String::new();
    service_vs_pgbench(&results, &mut out)?;
    service_vs_floor(&results, &mut out)?;
    contended(&results, &mut out)?;
    pgbench_latencies(&results, &mut out)?;
    instructions(&results, &mut out)?;
    relay(&results, &mut out)?;
    feed(&results, &mut out)?;
    Ok(out)
}

#[derive(Debug, clap::Args)]
pub struct MedianArgs {
    /// The JSON lines (`target/bench/results.jsonl`).
    results: PathBuf,
    #[arg(long)]
    scenario: String,
    #[arg(long, default_value = "service")]
    label: String,
    #[arg(long)]
    concurrency: u64,
    #[arg(long, default_value = "requests_per_s")]
    field: String,
}

/// The median of a figure over the rounds of one scenario.
pub fn median(args: &MedianArgs) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(&args.results).context("reading the results")?;
    let results = Results::parse(&text)?;
    results
        .figure("scenario", &args.scenario, &args.label, args.concurrency, &args.field)
        .map(|s| s.median)
        .with_context(|| format!("no {} runs labelled {} at {}", args.scenario, args.label, args.concurrency))
}

/// Publish throughput with the NATS relay on and off, same run.
fn relay(r: &Results, out: &mut String) -> anyhow::Result<()> {
    let levels: Vec<u64> = r
        .runs
        .keys()
        .filter(|(kind, name, label, _)| *kind == "scenario" && name == "fresh" && label == "relay-on")
        .map(|(.., c)| *c)
        .collect();
    for c in levels {
        writeln!(out)?;
        writeln!(out, "Fresh publish with the NATS relay on and off (alternating rounds, {c} callers)")?;
        writeln!(out)?;
        writeln!(out, "| relay on req/s | p99 ms | relay off req/s | p99 ms | on / off | errors |")?;
        writeln!(out, "|---:|---:|---:|---:|---:|---|")?;
        let f = |label, field, d| Spread::show(r.figure("scenario", "fresh", label, c, field), d);
        let errors: Vec<String> =
            ["relay-on", "relay-off"].iter().map(|l| r.errors("fresh", l, c)).filter(|e| e != "-").collect();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            f("relay-on", "requests_per_s", 0),
            f("relay-on", "p99_ms", 1),
            f("relay-off", "requests_per_s", 0),
            f("relay-off", "p99_ms", 1),
            Spread::show(
                r.ratio(("scenario", "fresh", "relay-on"), ("scenario", "fresh", "relay-off"), c),
                2
            ),
            if errors.is_empty() { "-".to_owned() } else { errors.join("; ") },
        )?;
    }
    Ok(())
}

/// Delivery lag and idle Watch streams, one line per measurement.
fn feed(r: &Results, out: &mut String) -> anyhow::Result<()> {
    let num = |v: &Value, d: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.d$}"));
    let lags: Vec<&Value> = r.other.iter().filter(|v| v["feed"] == "lag").collect();
    if !lags.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Delivery lag, publish answered -> seen by the reader (ms; in brackets from the publish sent, an upper bound)"
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "| rate asked / achieved | published | Watch p50 | Watch p99 | Watch max | JetStream p50 | JetStream p99 | JetStream max | missing (Watch / JetStream) | oldest-unsent gauge at 0 after s |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")?;
        for lag in lags {
            let (w, n) = (&lag["watch"], &lag["nats"]);
            writeln!(
                out,
                "| {} / {} | {} | {} ({}) | {} ({}) | {} | {} ({}) | {} ({}) | {} | {} / {} | {} |",
                num(&lag["rate"], 0),
                num(&lag["achieved_rate"], 0),
                lag["published"],
                num(&w["p50_ms"], 1),
                num(&w["from_send_p50_ms"], 1),
                num(&w["p99_ms"], 1),
                num(&w["from_send_p99_ms"], 1),
                num(&w["max_ms"], 1),
                num(&n["p50_ms"], 1),
                num(&n["from_send_p50_ms"], 1),
                num(&n["p99_ms"], 1),
                num(&n["from_send_p99_ms"], 1),
                num(&n["max_ms"], 1),
                w["missing"],
                n["missing"],
                num(&lag["gauge_zero_after_s"], 2),
            )?;
        }
    }
    let idles: Vec<&Value> = r.other.iter().filter(|v| v["feed"] == "idle-watch").collect();
    if !idles.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Idle Watch streams (server RSS in MiB; server CPU over the idle span, without and with the streams)"
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "| streams (open per the server) | connections | RSS before | RSS with streams | after idling | peak | idle s | CPU ms without | CPU ms with |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for idle in idles {
            writeln!(
                out,
                "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
                idle["streams"],
                num(&idle["open_per_server"], 0),
                idle["connections"],
                num(&idle["rss_before_mib"], 1),
                num(&idle["rss_open_mib"], 1),
                num(&idle["rss_after_idle_mib"], 1),
                num(&idle["peak_rss_mib"], 1),
                num(&idle["idle_s"], 0),
                num(&idle["cpu_ms_without_streams"], 0),
                num(&idle["cpu_ms_with_streams"], 0),
            )?;
        }
    }
    Ok(())
}

fn service_vs_pgbench(r: &Results, out: &mut String) -> anyhow::Result<()> {
    if r.levels.is_empty() {
        return Ok(());
    }
    // Rounds of the service's own runs (the feed part has rounds of its own).
    let rounds = r
        .runs
        .iter()
        .filter(|((kind, _, label, _), _)| *kind == "scenario" && label == "service")
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or_default();
    writeln!(
        out,
        "Service vs pgbench (median of {rounds} rounds, range in brackets; ratio = median of per-round ratios)"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| conc | fresh req/s | p99 ms | (a) naive tps | fresh / (a) | (b) one statement tps | fresh / (b) | repeat req/s | p99 ms | (c) fast path tps | repeat / (c) | mixed req/s | p99 ms | errors | peak RSS MiB |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")?;
    let svc = |name| ("scenario", name, "service");
    let pg = |name| ("pgbench", name, "pgbench");
    for &c in &r.levels {
        let f = |kind, name, label, field, d| Spread::show(r.figure(kind, name, label, c, field), d);
        let errors: Vec<String> = ["fresh", "repeat", "mixed"]
            .iter()
            .map(|s| r.errors(s, "service", c))
            .filter(|e| e != "-")
            .collect();
        writeln!(
            out,
            "| {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f("scenario", "fresh", "service", "requests_per_s", 0),
            f("scenario", "fresh", "service", "p99_ms", 1),
            f("pgbench", "naive", "pgbench", "requests_per_s", 0),
            Spread::show(r.ratio(svc("fresh"), pg("naive"), c), 2),
            f("pgbench", "single", "pgbench", "requests_per_s", 0),
            Spread::show(r.ratio(svc("fresh"), pg("single"), c), 2),
            f("scenario", "repeat", "service", "requests_per_s", 0),
            f("scenario", "repeat", "service", "p99_ms", 1),
            f("pgbench", "fastpath", "pgbench", "requests_per_s", 0),
            Spread::show(r.ratio(svc("repeat"), pg("fastpath"), c), 2),
            f("scenario", "mixed", "service", "requests_per_s", 0),
            f("scenario", "mixed", "service", "p99_ms", 1),
            if errors.is_empty() { "-".to_owned() } else { errors.join("; ") },
            peak_rss(r, c),
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// The highest peak RSS the service reached in any round at this level.
fn peak_rss(r: &Results, level: u64) -> String {
    let peak = ["fresh", "repeat", "mixed"]
        .iter()
        .filter_map(|s| r.rounds("scenario", s, "service", level))
        .flat_map(|rounds| rounds.values())
        .filter_map(|v| v["server_peak_rss_mib"].as_f64())
        .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))));
    peak.map_or("-".to_owned(), |p| format!("{p:.1}"))
}

fn service_vs_floor(r: &Results, out: &mut String) -> anyhow::Result<()> {
    if !r.runs.keys().any(|(kind, _, label, _)| *kind == "scenario" && label == "floor") {
        return Ok(());
    }
    writeln!(
        out,
        "Service vs the gRPC floor (the same service answering from memory, same load generator, same cores; a fresh publish is compared with the floor's repeat publish: in memory both are one map look-up and the same answer)"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| conc | floor publish req/s | p99 ms | fresh / floor | repeat / floor | floor mixed req/s | p99 ms | mixed / floor |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for &c in &r.levels {
        let floor = |name, field, d| Spread::show(r.figure("scenario", name, "floor", c, field), d);
        let ratio = |name, floor| {
            Spread::show(r.ratio(("scenario", name, "service"), ("scenario", floor, "floor"), c), 2)
        };
        writeln!(
            out,
            "| {c} | {} | {} | {} | {} | {} | {} | {} |",
            floor("repeat", "requests_per_s", 0),
            floor("repeat", "p99_ms", 1),
            ratio("fresh", "repeat"),
            ratio("repeat", "repeat"),
            floor("mixed", "requests_per_s", 0),
            floor("mixed", "p99_ms", 1),
            ratio("mixed", "mixed"),
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn contended(r: &Results, out: &mut String) -> anyhow::Result<()> {
    let runs: Vec<(&Key, &BTreeMap<u64, Value>)> = r
        .runs
        .iter()
        .filter(|((kind, name, label, _), _)| {
            *kind == "scenario" && name == "contended" && label == "service"
        })
        .collect();
    for ((_, _, _, callers), rounds) in runs {
        let figure = |field, d| {
            Spread::show(Spread::of(rounds.values().filter_map(|v| v[field].as_f64()).collect()), d)
        };
        writeln!(
            out,
            "| contended | callers | rounds | calls per round | req/s | p50 ms | p99 ms | max ms | errors |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|")?;
        writeln!(
            out,
            "| one draft per round of calls | {callers} | {} | {} | {} | {} | {} | {} | {} |",
            rounds.len(),
            figure("calls", 0),
            figure("requests_per_s", 0),
            figure("p50_ms", 1),
            figure("p99_ms", 1),
            figure("max_ms", 1),
            r.errors("contended", "service", *callers),
        )?;
        writeln!(out)?;
    }
    Ok(())
}

fn pgbench_latencies(r: &Results, out: &mut String) -> anyhow::Result<()> {
    if r.levels.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "pgbench latencies (ms, medians over rounds of p50 / p99; failed transactions in all rounds):"
    )?;
    for &c in &r.levels {
        let mut line = format!("  c={c}");
        for script in ["naive", "single", "fastpath"] {
            let Some(rounds) = r.rounds("pgbench", script, "pgbench", c) else { continue };
            let median = |field| {
                Spread::of(rounds.values().filter_map(|v| v[field].as_f64()).collect()).map(|s| s.median)
            };
            let failed: f64 = rounds.values().filter_map(|v| v["failed"].as_f64()).sum();
            let clients = rounds.values().next().and_then(|v| v["clients"].as_u64()).unwrap_or_default();
            write!(
                line,
                "  {script} ({clients} clients) {:.3} / {:.3} (failed {failed})",
                median("p50_ms").unwrap_or(f64::NAN),
                median("p99_ms").unwrap_or(f64::NAN)
            )?;
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn instructions(r: &Results, out: &mut String) -> anyhow::Result<()> {
    let runs: Vec<_> = r.runs.iter().filter(|((kind, ..), _)| *kind == "instructions").collect();
    if runs.is_empty() {
        return Ok(());
    }
    let per_call = |name: &str, label: &str| {
        r.runs
            .get(&("instructions", name.to_owned(), label.to_owned(), 0))
            .and_then(|rounds| rounds.values().next()?["per_call"].as_f64())
    };
    writeln!(out)?;
    writeln!(
        out,
        "Server instructions per call (callgrind, one caller; difference of two runs over the difference of their calls)"
    )?;
    writeln!(out)?;
    let before = runs.iter().any(|((_, _, label, _), _)| label == "before");
    if before {
        writeln!(
            out,
            "| scenario | service | gRPC floor | service / floor | before (BENCH_BEFORE_BIN) | service vs before |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    } else {
        writeln!(out, "| scenario | service | gRPC floor | service / floor |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
    }
    let mut names: Vec<&str> = runs.iter().map(|((_, name, ..), _)| name.as_str()).collect();
    names.dedup();
    for name in names {
        let (service, floor) = (per_call(name, "service"), per_call(name, "floor"));
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.0}k", v / 1000.0));
        let ratio = match (service, floor) {
            (Some(s), Some(f)) if f > 0.0 => format!("{:.1}", s / f),
            _ => "-".to_owned(),
        };
        // Each fresh call needs a draft of its own, created in the same run.
        let scenario = if name == "fresh" { "fresh (a CreateDraft + a PublishDraft)" } else { name };
        if before {
            let earlier = per_call(name, "before");
            let change = match (service, earlier) {
                (Some(s), Some(b)) if b > 0.0 => format!("{:+.0}%", (s / b - 1.0) * 100.0),
                _ => "-".to_owned(),
            };
            writeln!(
                out,
                "| {scenario} | {} | {} | {ratio} | {} | {change} |",
                show(service),
                show(floor),
                show(earlier)
            )?;
        } else {
            writeln!(out, "| {scenario} | {} | {} | {ratio} |", show(service), show(floor))?;
        }
    }
    Ok(())
}
