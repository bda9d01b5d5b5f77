//! [`GpuSampler`]: background sampling with a timeout and a shared cache, so no request path
//! ever waits on NVML.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bitsage_core::gpu::{
    GpuCollectorStatus, GpuInventory, GpuSample, HostInfo, HOST_ONLY_SOURCE,
    MAX_COLLECTOR_ERROR_LEN,
};
use bitsage_core::time::{now, Timestamp};
use bitsage_core::{DynGpuSource, Result};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant, MissedTickBehavior};

use crate::report::reason_of;

/// How a [`GpuSampler`] samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Time between two samples (default 1 s). A sample that overruns delays the next tick
    /// instead of bunching ticks up.
    pub interval: Duration,
    /// The longest one sample (or inventory read) may take before it counts as failed
    /// (default 5 s).
    pub timeout: Duration,
    /// The inventory is re-read every this many ticks (default 60), and whenever a sample
    /// names a device the cached inventory lacks.
    pub inventory_every: u32,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            inventory_every: 60,
        }
    }
}

/// What a [`GpuSampler`] knows, at one instant.
#[derive(Debug, Clone)]
pub struct SamplerSnapshot {
    /// The sampled source's name.
    pub source: &'static str,
    /// The latest inventory read successfully.
    pub inventory: Option<Arc<GpuInventory>>,
    /// The latest successful reading (kept after a failure; see `up` and `age`).
    pub samples: Option<Arc<Vec<GpuSample>>>,
    /// When that reading was taken (wall clock).
    pub taken_at: Option<Timestamp>,
    /// How old that reading is (monotonic clock), at the time of the snapshot.
    pub age: Option<Duration>,
    /// Whether the latest attempt succeeded.
    pub up: bool,
    /// Why the latest attempt failed (an unavailable source's reason, a timeout, ...).
    pub last_error: Option<String>,
    /// Failed attempts since the sampler started.
    pub errors_total: u64,
    /// Successful samples since the sampler started.
    pub samples_total: u64,
    /// The host section as of the latest step (CPU, load, memory).
    pub host: Option<HostInfo>,
    /// Why the host section could not be read at the latest step.
    pub host_error: Option<String>,
}

impl SamplerSnapshot {
    /// The collector's health as an agent reports it in its heartbeats (the error text is
    /// cut to [`MAX_COLLECTOR_ERROR_LEN`] bytes).
    pub fn collector_status(&self) -> GpuCollectorStatus {
        GpuCollectorStatus {
            source: self.source.to_owned(),
            up: self.up,
            last_error: self
                .last_error
                .as_deref()
                .map(|e| truncate(e, MAX_COLLECTOR_ERROR_LEN).to_owned()),
            samples_total: self.samples_total,
            sample_errors_total: self.errors_total,
            last_sample_age_seconds: self.age.map(|a| a.as_secs_f64()),
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Debug, Default)]
struct Cache {
    host: Option<HostInfo>,
    host_error: Option<String>,
    inventory: Option<Arc<GpuInventory>>,
    samples: Option<Arc<Vec<GpuSample>>>,
    taken_at: Option<Timestamp>,
    taken_instant: Option<Instant>,
    up: bool,
    last_error: Option<String>,
    errors_total: u64,
    samples_total: u64,
}

#[derive(Debug)]
struct Shared {
    source: DynGpuSource,
    config: SamplerConfig,
    cache: RwLock<Cache>,
    /// Serialises sampling steps (background ticks and [`GpuSampler::refresh`]).
    worker: tokio::sync::Mutex<Worker>,
}

#[derive(Debug, Default)]
struct Worker {
    ticks: u64,
    /// A sample that timed out but is still running; no new one starts until it ends.
    in_flight: Option<JoinHandle<Result<Vec<GpuSample>>>>,
}

/// Samples a [`bitsage_core::GpuSource`] in the background and serves the latest reading.
///
/// # Contract
/// - At most one sample of the source runs at a time: a sample that exceeds the timeout is
///   recorded as an error and, while it is still running, no new one is started.
/// - [`GpuSampler::snapshot`] never waits on the source: it reads the shared cache.
/// - A failed attempt keeps the previous good reading (with its growing `age`) and records
///   `up = false`, the reason and one more error; nothing is ever filled in.
/// - Dropping the sampler stops the background task.
#[derive(Debug)]
pub struct GpuSampler {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Drop for GpuSampler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl GpuSampler {
    /// Starts sampling `source` on the current tokio runtime (first sample immediately).
    pub fn spawn(source: DynGpuSource, config: SamplerConfig) -> Self {
        let mut sampler = Self::idle(source, config);
        let shared = Arc::clone(&sampler.shared);
        sampler.task = Some(tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval(shared.config.interval.max(Duration::from_millis(1)));
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                step(&shared).await;
            }
        }));
        sampler
    }

    /// A sampler with no background task: it samples only on [`GpuSampler::refresh`]
    /// (for one-shot commands and tests).
    pub fn idle(source: DynGpuSource, config: SamplerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                config,
                cache: RwLock::new(Cache::default()),
                worker: tokio::sync::Mutex::new(Worker::default()),
            }),
            task: None,
        }
    }

    /// Samples once now (waiting for a background step in progress first).
    pub async fn refresh(&self) {
        step(&self.shared).await;
    }

    /// The latest reading and the collector's health, from the cache.
    pub fn snapshot(&self) -> SamplerSnapshot {
        let cache = read(&self.shared.cache);
        SamplerSnapshot {
            source: self.shared.source.name(),
            inventory: cache.inventory.clone(),
            samples: cache.samples.clone(),
            taken_at: cache.taken_at,
            age: cache
                .taken_instant
                .map(|t| Instant::now().saturating_duration_since(t)),
            up: cache.up,
            last_error: cache.last_error.clone(),
            errors_total: cache.errors_total,
            samples_total: cache.samples_total,
            host: cache.host.clone(),
            host_error: cache.host_error.clone(),
        }
    }
}

fn read(lock: &RwLock<Cache>) -> std::sync::RwLockReadGuard<'_, Cache> {
    // The cache is replaced field by field under the lock; a panic cannot leave it torn in a
    // way that matters to readers, so a poisoned lock is still served.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<Cache>) -> std::sync::RwLockWriteGuard<'_, Cache> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn record_error(shared: &Shared, reason: String) {
    tracing::debug!(source = shared.source.name(), %reason, "GPU sample failed");
    let mut cache = write(&shared.cache);
    cache.up = false;
    cache.last_error = Some(reason);
    cache.errors_total += 1;
}

/// One sampling step: maybe the inventory, then one sample, both under the timeout.
async fn step(shared: &Arc<Shared>) {
    let mut worker = shared.worker.lock().await;
    let cfg = shared.config;
    if let Some(prev) = &worker.in_flight {
        if !prev.is_finished() {
            record_error(
                shared,
                format!(
                    "the previous sample is still running (timed out after {:?})",
                    cfg.timeout
                ),
            );
            return;
        }
        worker.in_flight = None;
    }
    if shared.source.name() == HOST_ONLY_SOURCE {
        // A host without GPUs: nothing to sample, which is not a failure (no error counted,
        // no `last_error`; the collector reports itself CPU-only). The host section is real.
        read_host(shared).await;
        return;
    }

    let refresh_inventory = {
        let cache = read(&shared.cache);
        cache.inventory.is_none() || worker.ticks % u64::from(cfg.inventory_every.max(1)) == 0
    };
    worker.ticks += 1;
    if refresh_inventory {
        read_inventory(shared).await;
    }
    read_host(shared).await;

    let source = Arc::clone(&shared.source);
    let mut handle = tokio::spawn(async move { source.sample().await });
    let outcome = match timeout(cfg.timeout, &mut handle).await {
        Ok(Ok(Ok(samples))) => Ok(samples),
        Ok(Ok(Err(e))) => Err(reason_of(&e)),
        Ok(Err(join)) => Err(format!("the sample task failed: {join}")),
        Err(_) => {
            worker.in_flight = Some(handle);
            Err(format!("the sample timed out after {:?}", cfg.timeout))
        }
    };
    match outcome {
        Ok(samples) => {
            let unknown_device = {
                let cache = read(&shared.cache);
                let known: HashSet<&str> = cache
                    .inventory
                    .iter()
                    .flat_map(|i| i.devices.iter().map(|d| d.uuid.as_str()))
                    .collect();
                samples.iter().any(|s| !known.contains(s.uuid.as_str()))
            };
            {
                let mut cache = write(&shared.cache);
                cache.samples = Some(Arc::new(samples));
                cache.taken_at = Some(now());
                cache.taken_instant = Some(Instant::now());
                cache.up = true;
                cache.last_error = None;
                cache.samples_total += 1;
            }
            if unknown_device {
                read_inventory(shared).await;
            }
        }
        Err(reason) => record_error(shared, reason),
    }
}

async fn read_host(shared: &Shared) {
    let result = match timeout(shared.config.timeout, shared.source.host()).await {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(reason_of(&e)),
        Err(_) => Err(format!(
            "the host read timed out after {:?}",
            shared.config.timeout
        )),
    };
    let mut cache = write(&shared.cache);
    match result {
        Ok(h) => {
            cache.host = Some(h);
            cache.host_error = None;
        }
        // A stale host section is not served as current.
        Err(reason) => {
            cache.host = None;
            cache.host_error = Some(reason);
        }
    }
}

async fn read_inventory(shared: &Shared) {
    match timeout(shared.config.timeout, shared.source.inventory()).await {
        Ok(Ok(inv)) => write(&shared.cache).inventory = Some(Arc::new(inv)),
        // The sample that follows reports the failure; the stale inventory stays.
        Ok(Err(e)) => tracing::debug!(error = %e, "GPU inventory failed"),
        Err(_) => tracing::debug!("GPU inventory timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostOnlySource;
    use async_trait::async_trait;
    use bitsage_core::gpu::{GpuDevice, HostInfo};
    use bitsage_core::{Error, GpuSource};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// One device; fails on demand; can hang forever.
    #[derive(Debug, Default)]
    struct Scripted {
        calls: AtomicU32,
        fail_from: Option<u32>,
        hang: bool,
    }

    #[async_trait]
    impl GpuSource for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn inventory(&self) -> Result<GpuInventory> {
            Ok(GpuInventory {
                devices: vec![GpuDevice {
                    index: 0,
                    uuid: "GPU-1".into(),
                    name: "test".into(),
                    pci_bus_id: None,
                    memory_total_bytes: None,
                    mig_enabled: None,
                    confidential_compute: None,
                    tier: None,
                    state: Default::default(),
                }],
                ..Default::default()
            })
        }
        async fn sample(&self) -> Result<Vec<GpuSample>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang {
                std::future::pending::<()>().await;
            }
            if self.fail_from.is_some_and(|f| n >= f) {
                return Err(Error::Unavailable {
                    source_name: "scripted".into(),
                    reason: "driver went away".into(),
                });
            }
            let mut s = GpuSample::empty("GPU-1", now());
            s.power_watts = Some(f64::from(n));
            Ok(vec![s])
        }
        async fn host(&self) -> Result<HostInfo> {
            Err(Error::Unavailable {
                source_name: "scripted".into(),
                reason: "none".into(),
            })
        }
    }

    #[tokio::test]
    async fn serves_the_latest_reading_and_keeps_it_after_a_failure() {
        let src = Arc::new(Scripted {
            fail_from: Some(2),
            ..Default::default()
        });
        let sampler = GpuSampler::idle(src, SamplerConfig::default());
        let empty = sampler.snapshot();
        assert!(!empty.up && empty.samples.is_none() && empty.last_error.is_none());

        sampler.refresh().await;
        sampler.refresh().await;
        let ok = sampler.snapshot();
        assert!(ok.up);
        assert_eq!(ok.samples_total, 2);
        assert_eq!(ok.samples.as_ref().unwrap()[0].power_watts, Some(1.0));
        assert_eq!(ok.inventory.as_ref().unwrap().devices.len(), 1);

        sampler.refresh().await;
        let failed = sampler.snapshot();
        assert!(!failed.up);
        assert_eq!(failed.errors_total, 1);
        assert_eq!(failed.last_error.as_deref(), Some("driver went away"));
        // The last good reading is still served, with its original time.
        assert_eq!(failed.samples.as_ref().unwrap()[0].power_watts, Some(1.0));
        assert_eq!(failed.taken_at, ok.taken_at);
        // The scripted host is unavailable: said so, not filled in.
        assert!(failed.host.is_none());
        assert_eq!(failed.host_error.as_deref(), Some("none"));
        // What the agent's heartbeat carries.
        let status = failed.collector_status();
        assert_eq!(status.source, "scripted");
        assert!(!status.up);
        assert_eq!(status.last_error.as_deref(), Some("driver went away"));
        assert_eq!((status.samples_total, status.sample_errors_total), (2, 1));
        assert!(status.last_sample_age_seconds.is_some_and(|a| a >= 0.0));
        status.validate().unwrap();
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_COLLECTOR_ERROR_LEN);
        let cut = truncate(&long, MAX_COLLECTOR_ERROR_LEN);
        assert!(cut.len() <= MAX_COLLECTOR_ERROR_LEN && cut.len() >= MAX_COLLECTOR_ERROR_LEN - 1);
        assert_eq!(truncate("short", 10), "short");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_source_times_out_and_is_not_started_twice() {
        let src = Arc::new(Scripted {
            hang: true,
            ..Default::default()
        });
        let cfg = SamplerConfig {
            timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let sampler = GpuSampler::idle(src.clone(), cfg);
        sampler.refresh().await;
        let s = sampler.snapshot();
        assert!(!s.up);
        assert!(s.last_error.as_deref().unwrap_or("").contains("timed out"));
        sampler.refresh().await;
        let s = sampler.snapshot();
        assert_eq!(s.errors_total, 2);
        assert!(s
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("still running"));
        assert_eq!(
            src.calls.load(Ordering::SeqCst),
            1,
            "a second sample was started"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_without_gpus_is_cpu_only_not_failing() {
        let sampler = GpuSampler::spawn(
            Arc::new(HostOnlySource::new("nvml", "libnvidia-ml.so.1 not found")),
            SamplerConfig::default(),
        );
        // Paused clock: sleeping advances virtual time and lets the ticks run.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let s = sampler.snapshot();
        // Nothing to sample is not a failure: no errors, no error text, no samples.
        assert!(!s.up);
        assert_eq!(s.errors_total, 0);
        assert_eq!(s.last_error, None);
        assert!(s.samples.is_none() && s.age.is_none());
        let status = s.collector_status();
        assert!(status.is_cpu_only(), "{status:?}");
        // What the agent exports: CPU-only, no `up 0` for an alert to fire on.
        let text = crate::prometheus::render(&[crate::prometheus::from_snapshot("n", &s)]);
        assert!(
            text.contains("bitsage_gpu_collector_cpu_only{node=\"n\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("bitsage_gpu_collector_up"), "{text}");
        // A GPU-less worker still has its host section.
        assert!(s.host.is_some_and(|h| h.logical_cores >= 1));
    }
}
