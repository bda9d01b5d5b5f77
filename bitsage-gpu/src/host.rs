//! The host a worker runs on (CPU, memory), for every worker — with or without GPUs.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bitsage_core::attestation::{HostAttestation, ATTESTATION_NONCE_LEN};
use bitsage_core::gpu::{GpuInventory, GpuSample, HostInfo};
use bitsage_core::{Error, GpuSource, Result};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

/// The source name of [`HostSource`] / [`HostOnlySource`] errors.
const HOST: &str = "host";

/// Reads the host: CPU model, logical cores, 1-minute load, memory total/available.
///
/// The CPU model and core count are read once when the source is built (they do not change
/// while the process runs); load and memory are read on every [`HostSource::read`]. Reading
/// is synchronous and cheap (a few `/proc` files), but [`HostSource::read_async`] still moves
/// it off the async runtime.
#[derive(Debug, Clone)]
pub struct HostSource {
    inner: Arc<HostInner>,
}

#[derive(Debug)]
struct HostInner {
    cpu_model: Option<String>,
    logical_cores: u32,
    system: Mutex<System>,
}

impl Default for HostSource {
    fn default() -> Self {
        Self::new()
    }
}

impl HostSource {
    /// Builds the source, reading the static CPU facts once.
    pub fn new() -> Self {
        let mut system = System::new();
        system.refresh_cpu_list(CpuRefreshKind::nothing());
        let cpu_model = system
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .filter(|b| !b.is_empty());
        let logical_cores = u32::try_from(system.cpus().len()).unwrap_or(u32::MAX);
        Self {
            inner: Arc::new(HostInner {
                cpu_model,
                logical_cores,
                system: Mutex::new(system),
            }),
        }
    }

    /// Reads the host now (blocking, a few `/proc` reads).
    ///
    /// Returns [`Error::Unavailable`] when the OS reports no CPU or no memory (e.g. `/proc` is
    /// not mounted): a host is never reported with zero cores or zero memory.
    pub fn read(&self) -> Result<HostInfo> {
        let inner = &self.inner;
        if inner.logical_cores == 0 {
            return Err(unavailable("the OS reports no CPU (is /proc mounted?)"));
        }
        let (total, available) = {
            // A poisoned lock only means another reader panicked mid-refresh; the System is
            // refreshed again below, so its content is still good to use.
            let mut sys = inner
                .system
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            (sys.total_memory(), sys.available_memory())
        };
        if total == 0 {
            return Err(unavailable("the OS reports no memory (is /proc mounted?)"));
        }
        Ok(HostInfo {
            cpu_model: inner.cpu_model.clone(),
            logical_cores: inner.logical_cores,
            load_average_1m: load_average_1m(),
            memory_total_bytes: total,
            memory_available_bytes: (available <= total).then_some(available),
        })
    }

    /// [`HostSource::read`] on a blocking thread.
    pub async fn read_async(&self) -> Result<HostInfo> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read())
            .await
            .map_err(|e| Error::backend(HOST, e))?
    }
}

/// The 1-minute load average; `None` where the OS has none (Windows) or it cannot be read.
/// On Linux it is parsed from `/proc/loadavg`, because sysinfo answers 0 on a read failure,
/// which would be indistinguishable from an idle host.
fn load_average_1m() -> Option<f64> {
    let load = if cfg!(target_os = "linux") {
        std::fs::read_to_string("/proc/loadavg")
            .ok()?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()?
    } else if cfg!(windows) {
        return None;
    } else {
        System::load_average().one
    };
    (load.is_finite() && load >= 0.0).then_some(load)
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::Unavailable {
        source_name: HOST.into(),
        reason: reason.into(),
    }
}

/// A [`GpuSource`] for a host without usable GPUs: the inventory and samples are
/// [`Error::Unavailable`] with the reason (e.g. NVML's own error), the host section is real.
///
/// This is what an agent runs with when NVML is missing (see [`crate::LocalGpu::detect`]): the
/// worker is shown as GPU-less, with the reason, instead of with made-up devices.
#[derive(Debug, Clone)]
pub struct HostOnlySource {
    gpu_source_name: String,
    reason: String,
    host: HostSource,
}

impl HostOnlySource {
    /// A host-only source; `gpu_source_name` names what is missing (e.g. `"nvml"`) and
    /// `reason` says why, in words an operator can act on.
    pub fn new(gpu_source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            gpu_source_name: gpu_source_name.into(),
            reason: if reason.trim().is_empty() {
                "no GPU source configured".into()
            } else {
                reason
            },
            host: HostSource::new(),
        }
    }

    /// A host-only source carrying the reason of a GPU source's error (the reason of an
    /// `Unavailable`, otherwise the error text).
    pub fn from_error(err: &Error) -> Self {
        match err {
            Error::Unavailable {
                source_name,
                reason,
            } => Self::new(source_name.clone(), reason.clone()),
            other => Self::new("gpu", other.to_string()),
        }
    }

    /// Why there is no GPU data.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn gpu_unavailable(&self) -> Error {
        Error::Unavailable {
            source_name: self.gpu_source_name.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[async_trait]
impl GpuSource for HostOnlySource {
    fn name(&self) -> &'static str {
        bitsage_core::gpu::HOST_ONLY_SOURCE
    }

    async fn inventory(&self) -> Result<GpuInventory> {
        Err(self.gpu_unavailable())
    }

    async fn sample(&self) -> Result<Vec<GpuSample>> {
        Err(self.gpu_unavailable())
    }

    async fn attest(&self, _nonce: [u8; ATTESTATION_NONCE_LEN]) -> HostAttestation {
        HostAttestation::unavailable(&self.reason)
    }

    async fn host(&self) -> Result<HostInfo> {
        self.host.read_async().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_host() {
        let host = HostSource::new().read().unwrap();
        assert!(host.logical_cores >= 1);
        assert!(host.memory_total_bytes > 0);
        assert!(host.memory_available_bytes.unwrap_or(0) <= host.memory_total_bytes);
    }

    #[tokio::test]
    async fn host_only_is_unavailable_with_its_reason() {
        let src = HostOnlySource::new("nvml", "libnvidia-ml.so.1 not found");
        match src.inventory().await {
            Err(Error::Unavailable {
                source_name,
                reason,
            }) => {
                assert_eq!(source_name, "nvml");
                assert!(reason.contains("libnvidia-ml"));
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
        assert!(src.host().await.is_ok());
        bitsage_core::conformance::gpu::run_all(&src).await;
    }

    #[test]
    fn an_empty_reason_is_replaced() {
        assert!(!HostOnlySource::new("nvml", "  ").reason().trim().is_empty());
    }
}
