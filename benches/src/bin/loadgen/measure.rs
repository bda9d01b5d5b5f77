//! Measurement plumbing shared by the scenarios: the warm-up/measurement window, latency
//! percentiles, error tallies, CPU accounting (per thread group and machine-wide) and the
//! description of the machine and build.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Most distinct error messages kept per phase (the counts are always complete).
const MAX_ERROR_SAMPLES: usize = 5;

/// The time frame of one phase: requests before `start` are warm-up, requests completing at or
/// after `end` are not counted, and no request is started after `end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// End of the warm-up, start of the measurement.
    pub start: Instant,
    /// End of the measurement.
    pub end: Instant,
}

impl Window {
    /// A window that starts `warmup` from now and lasts `duration`.
    pub(crate) fn after_warmup(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + duration,
        }
    }

    /// Whether a request that completed at `t` is counted.
    pub(crate) fn counts(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    /// The measured length in seconds.
    pub(crate) fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// What one load worker saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Latencies of successful requests completed inside the window, microseconds.
    pub latencies_us: Vec<u32>,
    /// Successful requests completed inside the window.
    pub ok: u64,
    /// Failed requests completed inside the window, by kind (e.g. `"401 unauthorized"`).
    pub errors: BTreeMap<String, u64>,
    /// Failed requests outside the window (warm-up or drain), by kind: reported too.
    pub errors_outside_window: BTreeMap<String, u64>,
    /// The first few distinct error messages.
    pub error_samples: Vec<String>,
    /// Successful requests over the whole phase (warm-up and drain included).
    pub ok_total: u64,
}

impl Tally {
    /// Records a success that took `latency` and completed at `done`.
    pub(crate) fn ok(&mut self, window: &Window, done: Instant, latency: Duration) {
        self.ok_total += 1;
        if window.counts(done) {
            self.ok += 1;
            self.latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// Records a failure of kind `kind` (a short category) with its full `message`.
    pub(crate) fn error(&mut self, window: &Window, done: Instant, kind: String, message: String) {
        let map = if window.counts(done) {
            &mut self.errors
        } else {
            &mut self.errors_outside_window
        };
        *map.entry(kind).or_default() += 1;
        if self.error_samples.len() < MAX_ERROR_SAMPLES && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        self.ok_total += other.ok_total;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.errors_outside_window {
            *self.errors_outside_window.entry(k).or_default() += v;
        }
        for m in other.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES && !self.error_samples.contains(&m) {
                self.error_samples.push(m);
            }
        }
    }

    /// Failed requests inside the window.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed requests outside the window.
    pub(crate) fn error_count_outside(&self) -> u64 {
        self.errors_outside_window.values().sum()
    }
}

/// Latency percentiles, milliseconds (nearest-rank over every successful request).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Percentiles {
    /// Number of latencies.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of `latencies_us` (sorted in place).
    pub(crate) fn of(latencies_us: &mut [u32]) -> Self {
        if latencies_us.is_empty() {
            return Self::default();
        }
        latencies_us.sort_unstable();
        let n = latencies_us.len();
        let at = |p: f64| {
            // Nearest rank: the smallest value with at least p % of the values at or below it.
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            f64::from(latencies_us[rank.clamp(1, n) - 1]) / 1000.0
        };
        let sum: u64 = latencies_us.iter().map(|&v| u64::from(v)).sum();
        Self {
            count: n as u64,
            mean_ms: sum as f64 / n as f64 / 1000.0,
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            p999_ms: at(99.9),
            max_ms: at(100.0),
        }
    }
}

// ---------------------------------------------------------------- CPU accounting

/// CPU time of this process's threads, by group, plus the machine's counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSnapshot {
    at: Option<Instant>,
    /// CPU nanoseconds (user + system) per thread group.
    groups: BTreeMap<&'static str, u64>,
    /// CPU nanoseconds and name per thread id.
    threads: BTreeMap<u64, (String, u64)>,
    /// CPU nanoseconds per thread name (a runtime's workers share one name).
    names: BTreeMap<String, u64>,
    /// This process, all threads (including ones that exited), nanoseconds (from clock ticks).
    process: u64,
    /// `/proc/stat` "cpu" line: total and idle+iowait and iowait and steal ticks.
    machine_total: u64,
    machine_idle: u64,
    machine_iowait: u64,
    machine_steal: u64,
    /// Live PostgreSQL processes on the machine (comm `postgres`), nanoseconds from ticks
    /// (the store's server is another process: its CPU is not in `process`).
    postgres: BTreeMap<u64, u64>,
}

/// The thread group of a thread name: the server runtime(s) (`lg-server`, `lg-server-c<i>`
/// with several coordinators) and the SQLite worker threads serve, the client runtime loads,
/// the signing threads (`lg-signer`: what the simulated agents would spend on their own
/// machines) sign, `other` is the rest (main thread, samplers; wrk is a separate process).
fn group_of(comm: &str) -> &'static str {
    if comm.starts_with("lg-server") || comm.starts_with("sqlx-sqlite") {
        "server"
    } else if comm.starts_with("lg-client") {
        "client"
    } else if comm.starts_with("lg-signer") {
        "signer"
    } else {
        "other"
    }
}

/// utime + stime (clock ticks) of a `/proc/.../stat` line, and the command name.
fn parse_stat(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based, man 5 proc).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Nanoseconds per `/proc` clock tick.
fn ns_per_tick() -> u64 {
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| (1e9 / ticks_per_sec()) as u64)
}

/// A thread's time on a CPU, nanoseconds, from `schedstat` (exact; clock ticks are sampled
/// and miss threads that run in short bursts, such as the signers).
fn schedstat_ns(task: &Path) -> Option<u64> {
    std::fs::read_to_string(task.join("schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl CpuSnapshot {
    /// Reads the counters now (Linux `/proc`; empty elsewhere). Per thread: `schedstat`'s
    /// run time where the kernel has it, otherwise `stat`'s clock ticks.
    pub(crate) fn take() -> Self {
        let mut snap = CpuSnapshot {
            at: Some(Instant::now()),
            ..Default::default()
        };
        let per_tick = ns_per_tick();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for entry in dir.flatten() {
                let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, ticks)) = parse_stat(&line) {
                    let ticks = schedstat_ns(&entry.path()).unwrap_or(ticks * per_tick);
                    *snap.groups.entry(group_of(&comm)).or_default() += ticks;
                    *snap.names.entry(comm.clone()).or_default() += ticks;
                    if let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) {
                        snap.threads.insert(tid, (comm, ticks));
                    }
                }
            }
        }
        if let Some((_, ticks)) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|l| parse_stat(&l))
        {
            snap.process = ticks * per_tick;
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) {
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal (guest time is inside user).
                snap.machine_total = v.iter().take(8).sum();
                snap.machine_idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                snap.machine_iowait = v.get(4).copied().unwrap_or(0);
                snap.machine_steal = v.get(7).copied().unwrap_or(0);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u64>().ok())
                else {
                    continue;
                };
                let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, ticks)) = parse_stat(&line) {
                    if comm == "postgres" {
                        snap.postgres.insert(pid, ticks * per_tick);
                    }
                }
            }
        }
        snap
    }
}

/// CPU use over a window, in cores (1.0 = one core busy the whole time).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CpuReport {
    /// Server side: the coordinator's runtime threads and its SQLite worker threads.
    pub server_cores: f64,
    /// Client side: the load generator's runtime threads (HTTP client; signing too where it
    /// is done inline).
    pub client_cores: f64,
    /// The signing threads (`lg-signer`): the simulated agents' own work, done ahead of the
    /// send time on dedicated threads (0 when everything was pre-signed before the window).
    pub signer_cores: f64,
    /// This process in all (server + client + other threads).
    pub process_cores: f64,
    /// The machine (all processes, incl. other users' builds and PostgreSQL), busy cores.
    pub machine_busy_cores: f64,
    /// The machine's idle share (idle + iowait), 0–1.
    pub machine_idle_ratio: f64,
    /// The machine's iowait share, 0–1.
    pub machine_iowait_ratio: f64,
    /// The machine's steal share, 0–1 (hypervisor).
    pub machine_steal_ratio: f64,
    /// PostgreSQL server processes on this machine (0 without one): the store's own CPU,
    /// outside this process (backends that started or ended inside the window are missed or
    /// counted only in part).
    pub postgres_cores: f64,
    /// Cores of the machine.
    pub machine_cores: usize,
    /// The busiest threads of this process (`name/tid`, cores), busiest first.
    pub top_threads: Vec<(String, f64)>,
    /// Cores per thread name (a runtime's workers share one name; with several coordinators
    /// each has its own runtime, `lg-server-c<i>`).
    pub by_thread_name: BTreeMap<String, f64>,
}

/// Threads listed in [`CpuReport::top_threads`].
const TOP_THREADS: usize = 6;

impl CpuReport {
    /// CPU use between two snapshots.
    pub(crate) fn between(a: &CpuSnapshot, b: &CpuSnapshot) -> Self {
        let secs = match (a.at, b.at) {
            (Some(x), Some(y)) => (y - x).as_secs_f64().max(1e-9),
            _ => return Self::default(),
        };
        let cores = |t0: u64, t1: u64| t1.saturating_sub(t0) as f64 / 1e9 / secs;
        let group = |g: &str| {
            cores(
                a.groups.get(g).copied().unwrap_or(0),
                b.groups.get(g).copied().unwrap_or(0),
            )
        };
        let total = b.machine_total.saturating_sub(a.machine_total).max(1) as f64;
        let idle = b.machine_idle.saturating_sub(a.machine_idle) as f64 / total;
        let machine_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut top_threads: Vec<(String, f64)> = b
            .threads
            .iter()
            .map(|(tid, (comm, t1))| {
                let t0 = a.threads.get(tid).map_or(0, |(_, t)| *t);
                (format!("{comm}/{tid}"), cores(t0, *t1))
            })
            .filter(|(_, c)| *c > 0.0)
            .collect();
        top_threads.sort_by(|x, y| y.1.total_cmp(&x.1));
        top_threads.truncate(TOP_THREADS);
        let by_thread_name = b
            .names
            .iter()
            .map(|(name, t1)| {
                let t0 = a.names.get(name).copied().unwrap_or(0);
                (name.clone(), cores(t0, *t1))
            })
            .filter(|(_, c)| *c > 0.0)
            .collect();
        Self {
            top_threads,
            by_thread_name,
            server_cores: group("server"),
            client_cores: group("client"),
            signer_cores: group("signer"),
            process_cores: cores(a.process, b.process),
            machine_busy_cores: (1.0 - idle) * machine_cores as f64,
            machine_idle_ratio: idle,
            machine_iowait_ratio: b.machine_iowait.saturating_sub(a.machine_iowait) as f64 / total,
            machine_steal_ratio: b.machine_steal.saturating_sub(a.machine_steal) as f64 / total,
            postgres_cores: b
                .postgres
                .iter()
                .map(|(pid, t1)| cores(a.postgres.get(pid).copied().unwrap_or(*t1), *t1))
                .fold(0.0, |x, y| x + y),
            machine_cores,
        }
    }
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Takes CPU snapshots at the window's start and end on a plain thread (independent of the
/// runtimes being measured); join it after the phase.
pub(crate) fn cpu_over(window: Window) -> std::thread::JoinHandle<CpuReport> {
    std::thread::spawn(move || {
        let sleep_until = |t: Instant| {
            let now = Instant::now();
            if t > now {
                std::thread::sleep(t - now);
            }
        };
        sleep_until(window.start);
        let a = CpuSnapshot::take();
        sleep_until(window.end);
        let b = CpuSnapshot::take();
        CpuReport::between(&a, &b)
    })
}

// ---------------------------------------------------------------- fsync probe

/// How long one `write(4 KiB) + fdatasync` takes in a directory: the floor under a durable
/// commit there (SQLite in WAL mode with `synchronous = FULL` syncs the WAL on every commit).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct FsyncProbe {
    /// Syncs done.
    pub syncs: u64,
    /// Median latency of one write + fdatasync, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 1 / median: the most commits per second one writer syncing each commit can do.
    pub ceiling_per_sec: f64,
}

/// Runs write + `sync_data` in a loop for `duration` on a file in `dir`.
pub(crate) fn fsync_probe(dir: &Path, duration: Duration) -> anyhow::Result<FsyncProbe> {
    let path = dir.join("fsync-probe.bin");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let mut lat = Vec::new();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    let p = Percentiles::of(&mut lat);
    Ok(FsyncProbe {
        syncs: p.count,
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
        ceiling_per_sec: if p.p50_ms > 0.0 {
            1000.0 / p.p50_ms
        } else {
            0.0
        },
    })
}

// ---------------------------------------------------------------- machine and build

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Environment {
    /// `git rev-parse --short HEAD` in the working directory.
    pub commit: String,
    /// Whether `git status --porcelain` listed changes (tracked or untracked).
    pub uncommitted_changes: Option<bool>,
    /// `nproc`.
    pub nproc: usize,
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Total RAM, GiB.
    pub ram_gib: f64,
    /// 1-minute load average when the run started (other users share the machine).
    pub load_average_1m_at_start: Option<f64>,
    /// The cargo profile the load generator was built with.
    pub profile: &'static str,
    /// Its opt-level.
    pub opt_level: &'static str,
    /// RUSTFLAGS it was built with (empty: none).
    pub rustflags: &'static str,
    /// The compiler.
    pub rustc: &'static str,
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The 1-minute load average.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Environment {
    /// Reads the machine and the git state of the working directory.
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let ram_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            commit: git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            uncommitted_changes: git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            ram_gib: (ram_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            load_average_1m_at_start: load_average(),
            profile: env!("BITSAGE_BENCH_PROFILE"),
            opt_level: env!("BITSAGE_BENCH_OPT_LEVEL"),
            rustflags: env!("BITSAGE_BENCH_RUSTFLAGS"),
            rustc: env!("BITSAGE_BENCH_RUSTC"),
        }
    }

    /// One line for people.
    pub(crate) fn summary(&self) -> String {
        let dirty = match self.uncommitted_changes {
            Some(true) => " + uncommitted changes",
            Some(false) => "",
            None => " (git state unknown)",
        };
        format!(
            "commit {}{dirty}; nproc {}; CPU {}; RAM {} GiB; load avg (1 min) at start {}; \
             build: profile {} (opt-level {}), RUSTFLAGS={:?}, {}",
            self.commit,
            self.nproc,
            self.cpu_model,
            self.ram_gib,
            self.load_average_1m_at_start
                .map_or_else(|| "?".into(), |l| format!("{l:.2}")),
            self.profile,
            self.opt_level,
            self.rustflags,
            self.rustc,
        )
    }
}

/// Formats [`CpuReport::top_threads`] as `name/tid 0.42, …`.
pub(crate) fn format_threads(threads: &[(String, f64)]) -> String {
    threads
        .iter()
        .map(|(n, c)| format!("{n} {c:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats an error map as `kind×count, …` (or `none`).
pub(crate) fn format_errors(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------- latency histogram

/// Exact buckets below this many microseconds.
const HIST_LINEAR: u64 = 256;
/// Sub-buckets per power of two above [`HIST_LINEAR`] (7 bits: ≤ 0.8 % relative error).
const HIST_SUB_BITS: u32 = 7;
/// Buckets: the linear part, then 128 per power of two up to 2^40 µs (~12 days).
const HIST_BUCKETS: usize = HIST_LINEAR as usize + (40 - 8) * (1 << HIST_SUB_BITS);

/// A latency histogram of fixed size (microseconds, exact below 256 µs, then ≤ 0.8 % wide
/// buckets): unlike a list of every latency it does not grow with the run, so a long run's
/// RSS shows the server's memory, not the load generator's.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; HIST_BUCKETS],
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < HIST_LINEAR {
            return us as usize;
        }
        let e = 63 - us.leading_zeros(); // ≥ 8
        let m = (us >> (e - HIST_SUB_BITS)) & ((1 << HIST_SUB_BITS) - 1);
        let i = HIST_LINEAR as usize + (e as usize - 8) * (1 << HIST_SUB_BITS) + m as usize;
        i.min(HIST_BUCKETS - 1)
    }

    /// The largest value of bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < HIST_LINEAR as usize {
            return i as u64;
        }
        let k = i - HIST_LINEAR as usize;
        let e = (k >> HIST_SUB_BITS) as u32 + 8;
        let m = (k & ((1 << HIST_SUB_BITS) - 1)) as u64;
        let width = 1u64 << (e - HIST_SUB_BITS);
        (((1u64 << HIST_SUB_BITS) + m) << (e - HIST_SUB_BITS)) + width - 1
    }

    /// Records one latency.
    pub(crate) fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::index(us)] += 1;
        self.count += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += *b;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Nearest-rank percentiles (each the upper end of its bucket, at most the maximum; mean
    /// and maximum exact).
    pub(crate) fn percentiles(&self) -> Percentiles {
        if self.count == 0 {
            return Percentiles::default();
        }
        let at = |p: f64| {
            let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
            let mut seen = 0u64;
            for (i, n) in self.buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Self::upper(i).min(self.max_us) as f64 / 1000.0;
                }
            }
            self.max_us as f64 / 1000.0
        };
        Percentiles {
            count: self.count,
            mean_ms: self.sum_us as f64 / self.count as f64 / 1000.0,
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            p999_ms: at(99.9),
            max_ms: self.max_us as f64 / 1000.0,
        }
    }
}

// ---------------------------------------------------------------- memory

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in MiB.
fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The resident set of this process (server and client together), MiB.
pub(crate) fn rss_mib() -> Option<f64> {
    proc_status_mib("VmRSS:")
}

/// The Rust heap: memory mimalloc (the global allocator) holds committed, MiB.
#[allow(unsafe_code)]
fn rust_heap_mib() -> f64 {
    let mut commit = 0usize;
    // SAFETY: every out-parameter but one is null, which `mi_process_info` allows; `commit`
    // is a valid `usize` it writes once.
    unsafe {
        libmimalloc_sys::mi_process_info(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut commit,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
    commit as f64 / (1024.0 * 1024.0)
}

/// SQLite's own allocations in this process (page caches, prepared statements, schema), MiB.
#[allow(unsafe_code)]
fn sqlite_mib() -> f64 {
    // SAFETY: a thread-safe read of SQLite's global allocation counter; no arguments.
    let bytes = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    bytes.max(0) as f64 / (1024.0 * 1024.0)
}

/// Least-squares slope of `points` (x in seconds, y in MiB), MiB per minute.
fn slope_per_min(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        0.0
    } else {
        sxy / sxx * 60.0
    }
}

/// One series of memory samples: its ends, its largest value and its slopes.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct MemSeries {
    /// At the window's start, MiB.
    pub start_mib: f64,
    /// At its end, MiB.
    pub end_mib: f64,
    /// Largest sample, MiB.
    pub max_mib: f64,
    /// Least-squares slope over the samples, MiB per minute (growth shows as a positive
    /// slope that does not flatten; a few MiB/min over a short window is allocator warm-up).
    pub slope_mib_per_min: f64,
    /// Slope over the second half of the window only, MiB per minute (a leak keeps its slope,
    /// warm-up flattens).
    pub second_half_slope_mib_per_min: f64,
    /// `(seconds since the window's start, MiB)`.
    pub samples: Vec<(f64, f64)>,
}

impl MemSeries {
    fn of(samples: Vec<(f64, f64)>, window: &Window) -> Self {
        let half = window.secs() / 2.0;
        let second_half: Vec<(f64, f64)> =
            samples.iter().copied().filter(|p| p.0 >= half).collect();
        Self {
            start_mib: samples.first().map_or(0.0, |p| p.1),
            end_mib: samples.last().map_or(0.0, |p| p.1),
            max_mib: samples.iter().map(|p| p.1).fold(0.0, f64::max),
            slope_mib_per_min: slope_per_min(&samples),
            second_half_slope_mib_per_min: slope_per_min(&second_half),
            samples,
        }
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name} start {:.1}, end {:.1}, max {:.1}, slope {:+.2} MiB/min (second half {:+.2})",
            self.start_mib,
            self.end_mib,
            self.max_mib,
            self.slope_mib_per_min,
            self.second_half_slope_mib_per_min
        )
    }
}

/// The process's memory over a window, sampled on a plain thread: the resident set (server
/// and client together), and two parts of it that can be told apart from inside — the Rust
/// heap (everything Rust allocates, server and generator: mimalloc's committed memory) and
/// SQLite's allocations. What the resident set holds beyond them is code, stacks and pages of
/// glibc's heap not counted by SQLite.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RssReport {
    /// Seconds between samples.
    pub every_secs: f64,
    /// `VmHWM` (the process's peak resident set since it started, setup included) at the end.
    pub peak_since_start_mib: f64,
    /// The resident set (its fields sit at the top level of the JSON, as before the split).
    #[serde(flatten)]
    pub resident: MemSeries,
    /// The Rust heap (mimalloc's committed memory).
    pub rust_heap: MemSeries,
    /// SQLite's own allocations (`sqlite3_memory_used`).
    pub sqlite: MemSeries,
}

/// Samples `VmRSS`, the Rust heap and SQLite's memory at the window's start, every `every`,
/// and at its end, on a plain thread; join it after the phase.
pub(crate) fn rss_over(window: Window, every: Duration) -> std::thread::JoinHandle<RssReport> {
    let every = every.max(Duration::from_millis(100));
    std::thread::Builder::new()
        .name("lg-rss".into())
        .spawn(move || {
            let sleep_until = |t: Instant| {
                let now = Instant::now();
                if t > now {
                    std::thread::sleep(t - now);
                }
            };
            let (mut rss, mut heap, mut sqlite) = (Vec::new(), Vec::new(), Vec::new());
            let mut next = window.start;
            loop {
                sleep_until(next);
                let at = (Instant::now() - window.start).as_secs_f64();
                if let Some(mib) = rss_mib() {
                    rss.push((at, mib));
                }
                heap.push((at, rust_heap_mib()));
                sqlite.push((at, sqlite_mib()));
                if next >= window.end {
                    break;
                }
                next = (next + every).min(window.end);
            }
            RssReport {
                every_secs: every.as_secs_f64(),
                peak_since_start_mib: proc_status_mib("VmHWM:").unwrap_or(0.0),
                resident: MemSeries::of(rss, &window),
                rust_heap: MemSeries::of(heap, &window),
                sqlite: MemSeries::of(sqlite, &window),
            }
        })
        .expect("spawning the RSS sampler")
}

impl RssReport {
    /// Lines for people.
    pub(crate) fn summary(&self) -> String {
        format!(
            "RSS (whole process, MiB): start {:.1}, end {:.1}, max {:.1} (peak since start {:.1}); \
             slope {:+.2} MiB/min (second half {:+.2}) over {} samples every {:.0} s\n  \
             of which {}\n  and {}",
            self.resident.start_mib,
            self.resident.end_mib,
            self.resident.max_mib,
            self.peak_since_start_mib,
            self.resident.slope_mib_per_min,
            self.resident.second_half_slope_mib_per_min,
            self.resident.samples.len(),
            self.every_secs,
            self.rust_heap.line("Rust heap (mimalloc committed):"),
            self.sqlite.line("SQLite's allocations:"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip() {
        for us in [0u64, 1, 255, 256, 257, 1000, 12_345, 1 << 20, (1 << 30) + 7] {
            let i = Histogram::index(us);
            assert!(Histogram::upper(i) >= us, "{us}");
            let lower = if i == 0 {
                0
            } else {
                Histogram::upper(i - 1) + 1
            };
            assert!(lower <= us, "{us}");
            assert!(
                (Histogram::upper(i) - lower) as f64 <= us as f64 / 100.0 + 1.0,
                "{us}"
            );
        }
    }

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 0.5, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 1.0, "{p:?}");
        assert_eq!(p.max_ms, 100.0);
        assert!((p.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn slope() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 10.0, 100.0 + i as f64))
            .collect();
        assert!((slope_per_min(&pts) - 6.0).abs() < 1e-9);
    }
}
