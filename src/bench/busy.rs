//! How busy the machine was during a measurement. Two-thread timings collapse when another
//! process takes a core, so every number is reported with the share of all cores' CPU time
//! that *other* processes used while it ran: machine-wide busy time (/proc/stat) minus this
//! process's own (/proc/self/stat, all threads). The Python side computes the same figure.

use std::time::Instant;

#[derive(Clone, Copy)]
struct CpuSample {
    machine_busy: u64,
    own: u64,
    at: Instant,
}

fn read_sample() -> Option<CpuSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let machine_busy = f.iter().take(8).sum::<u64>() - f.get(3)? - f.get(4)?;
    let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
    let own = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some(CpuSample {
        machine_busy,
        own,
        at: Instant::now(),
    })
}

/// Clock ticks per second of /proc/stat: USER_HZ, 100 on every Linux ABI we run on.
const USER_HZ: f64 = 100.0;

/// Measures the share of the machine that other processes used between `start` and `stop`.
pub(super) struct BusyMeter(Option<CpuSample>);

impl BusyMeter {
    pub(super) fn start() -> Self {
        BusyMeter(read_sample())
    }
    /// Other processes' CPU time since `start`, in % of all cores' time (`None` without /proc).
    pub(super) fn stop(&self) -> Option<f64> {
        let (a, b) = (self.0?, read_sample()?);
        let wall = (b.at - a.at).as_secs_f64().max(1e-9);
        let others = (b.machine_busy - a.machine_busy).saturating_sub(b.own - a.own) as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Some(100.0 * others / USER_HZ / (wall * cores))
    }
}

/// /proc/stat counts in 10 ms ticks: a busy share over a shorter window is mostly rounding
/// (a 20 ms window read 0% or 237%), so short workloads repeat until the window is this long.
const MIN_WINDOW_S: f64 = 0.5;

/// Median seconds per call of `f` over at least `iters` calls (more for short calls, up to
/// [`MIN_WINDOW_S`]) after `warmup` calls, and the busy share over the timed calls.
pub(super) fn timed(warmup: usize, iters: usize, mut f: impl FnMut()) -> (f64, Option<f64>) {
    for _ in 0..warmup {
        f();
    }
    let meter = BusyMeter::start();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < iters.max(1)
        || (start.elapsed().as_secs_f64() < MIN_WINDOW_S && times.len() < 1000)
    {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    let busy = meter.stop();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], busy)
}
