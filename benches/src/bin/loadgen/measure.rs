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
pub struct Window {
    /// End of the warm-up, start of the measurement.
    pub start: Instant,
    /// End of the measurement.
    pub end: Instant,
}

impl Window {
    /// A window that starts `warmup` from now and lasts `duration`.
    pub fn after_warmup(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + duration,
        }
    }

    /// Whether a request that completed at `t` is counted.
    pub fn counts(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    /// The measured length in seconds.
    pub fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// What one load worker saw.
#[derive(Debug, Default)]
pub struct Tally {
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
    pub fn ok(&mut self, window: &Window, done: Instant, latency: Duration) {
        self.ok_total += 1;
        if window.counts(done) {
            self.ok += 1;
            self.latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// Records a failure of kind `kind` (a short category) with its full `message`.
    pub fn error(&mut self, window: &Window, done: Instant, kind: String, message: String) {
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
    pub fn merge(&mut self, other: Tally) {
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
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed requests outside the window.
    pub fn error_count_outside(&self) -> u64 {
        self.errors_outside_window.values().sum()
    }
}

/// Latency percentiles, milliseconds (nearest-rank over every successful request).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
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
    pub fn of(latencies_us: &mut [u32]) -> Self {
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
pub struct CpuSnapshot {
    at: Option<Instant>,
    /// Clock ticks (user + system) per thread group.
    groups: BTreeMap<&'static str, u64>,
    /// Clock ticks and name per thread id.
    threads: BTreeMap<u64, (String, u64)>,
    /// This process, all threads (including ones that exited), clock ticks.
    process: u64,
    /// `/proc/stat` "cpu" line: total and idle+iowait and iowait and steal ticks.
    machine_total: u64,
    machine_idle: u64,
    machine_iowait: u64,
    machine_steal: u64,
}

/// The thread group of a thread name: the server runtime and the SQLite worker threads serve,
/// the client runtime loads, `other` is the rest (main thread, wrk is a separate process).
fn group_of(comm: &str) -> &'static str {
    if comm.starts_with("lg-server") || comm.starts_with("sqlx-sqlite") {
        "server"
    } else if comm.starts_with("lg-client") {
        "client"
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

impl CpuSnapshot {
    /// Reads the counters now (Linux `/proc`; empty elsewhere).
    pub fn take() -> Self {
        let mut snap = CpuSnapshot {
            at: Some(Instant::now()),
            ..Default::default()
        };
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for entry in dir.flatten() {
                let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, ticks)) = parse_stat(&line) {
                    *snap.groups.entry(group_of(&comm)).or_default() += ticks;
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
            snap.process = ticks;
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
        snap
    }
}

/// CPU use over a window, in cores (1.0 = one core busy the whole time).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuReport {
    /// Server side: the coordinator's runtime threads and its SQLite worker threads.
    pub server_cores: f64,
    /// Client side: the load generator's runtime threads (signing, HTTP client).
    pub client_cores: f64,
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
    /// Cores of the machine.
    pub machine_cores: usize,
    /// The busiest threads of this process (`name/tid`, cores), busiest first.
    pub top_threads: Vec<(String, f64)>,
}

/// Threads listed in [`CpuReport::top_threads`].
const TOP_THREADS: usize = 6;

impl CpuReport {
    /// CPU use between two snapshots.
    pub fn between(a: &CpuSnapshot, b: &CpuSnapshot, ticks_per_sec: f64) -> Self {
        let secs = match (a.at, b.at) {
            (Some(x), Some(y)) => (y - x).as_secs_f64().max(1e-9),
            _ => return Self::default(),
        };
        let cores = |t0: u64, t1: u64| t1.saturating_sub(t0) as f64 / ticks_per_sec / secs;
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
        Self {
            top_threads,
            server_cores: group("server"),
            client_cores: group("client"),
            process_cores: cores(a.process, b.process),
            machine_busy_cores: (1.0 - idle) * machine_cores as f64,
            machine_idle_ratio: idle,
            machine_iowait_ratio: b.machine_iowait.saturating_sub(a.machine_iowait) as f64 / total,
            machine_steal_ratio: b.machine_steal.saturating_sub(a.machine_steal) as f64 / total,
            machine_cores,
        }
    }
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_sec() -> f64 {
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
pub fn cpu_over(window: Window) -> std::thread::JoinHandle<CpuReport> {
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
        CpuReport::between(&a, &b, ticks_per_sec())
    })
}

// ---------------------------------------------------------------- fsync probe

/// How long one `write(4 KiB) + fdatasync` takes in a directory: the floor under a durable
/// commit there (SQLite in WAL mode with `synchronous = FULL` syncs the WAL on every commit).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsyncProbe {
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
pub fn fsync_probe(dir: &Path, duration: Duration) -> anyhow::Result<FsyncProbe> {
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
pub struct Environment {
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
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Environment {
    /// Reads the machine and the git state of the working directory.
    pub fn detect() -> Self {
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
    pub fn summary(&self) -> String {
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
pub fn format_threads(threads: &[(String, f64)]) -> String {
    threads
        .iter()
        .map(|(n, c)| format!("{n} {c:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats an error map as `kind×count, …` (or `none`).
pub fn format_errors(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
