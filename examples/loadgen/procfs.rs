//! What `/proc` says about another process (the server under load): its
//! memory and the CPU time it has used.

use std::time::Duration;

use anyhow::Context as _;

/// Linux reports CPU times in /proc/PID/stat in clock ticks of USER_HZ, which
/// is 100 on every mainstream kernel configuration (the value
/// `getconf CLK_TCK` prints).
const TICKS_PER_SECOND: f64 = 100.0;

/// A `VmHWM` (peak) or `VmRSS` (now) line of /proc/PID/status, in MiB.
pub fn memory_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// User plus system CPU time the process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis start with field 3 (state). utime and stime are
    // fields 14 and 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |n: usize| -> anyhow::Result<f64> {
        Ok(fields.get(n - 3).context("short /proc/PID/stat")?.parse::<f64>()?)
    };
    Ok(Duration::from_secs_f64((ticks(14)? + ticks(15)?) / TICKS_PER_SECOND))
}
