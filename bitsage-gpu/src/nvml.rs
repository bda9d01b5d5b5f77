//! [`NvmlGpuSource`]: NVIDIA GPUs read through NVML (`libnvidia-ml.so.1`, loaded at run time).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bitsage_core::gpu::{
    classify_tier, DeviceState, GpuDevice, GpuInventory, GpuProcess, GpuSample, HostInfo,
};
use bitsage_core::time::now;
use bitsage_core::{Error, GpuSource, Result};
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use bitsage_core::attestation::{
    Attestation, DeviceAttestation, HostAttestation, ATTESTATION_NONCE_LEN,
};

use crate::attestation::from_nvml;
use crate::host::HostSource;
use crate::report::reason_of;
use crate::xid::XidWatch;

/// The source name used in errors and reports.
pub(crate) const NVML: &str = "nvml";

/// NVML reports MIG mode as this value when enabled (`NVML_DEVICE_MIG_ENABLE`).
const MIG_ENABLED: u32 = 1;

/// NVIDIA GPUs, read through NVML.
///
/// - **Inventory**: name, UUID, PCI bus id, framebuffer size, MIG mode, confidential-compute
///   mode, the [`classify_tier`] tier; driver and CUDA driver versions.
/// - **Samples** (dcgm-exporter's default set): GPU and memory-controller utilization,
///   framebuffer used/free, temperature, power, total energy, SM and memory clocks, PCIe
///   TX/RX throughput and replays, volatile ECC corrected/uncorrected counts, XID events since
///   the previous sample, running compute processes.
/// - A metric the device does not support (`NotSupported`, a function the driver lacks, …) is
///   `None`. A device that cannot be reached is reported with [`DeviceState::Lost`] (or
///   [`DeviceState::NoPermission`]) and no metrics, under the UUID it last had (or
///   `nvml-index-<i>` when it was never readable), never dropped.
/// - Every NVML call is blocking and runs on `tokio::task::spawn_blocking`. A sample takes
///   about 40 ms of wall time per device (NVML measures PCIe throughput over 20 ms per
///   direction) but little CPU; run it from a background [`crate::GpuSampler`], not on a
///   request path.
/// - XID events are collected by a background thread (NVML event set, 500 ms waits) started
///   by [`NvmlGpuSource::new`] and stopped when the source is dropped.
pub struct NvmlGpuSource {
    inner: Arc<NvmlInner>,
    host: HostSource,
}

pub(crate) struct NvmlInner {
    pub(crate) nvml: Nvml,
    /// NVML index → UUID as last read, to name a device that can no longer be read.
    known: Mutex<HashMap<u32, String>>,
    pub(crate) xid: XidWatch,
    pub(crate) stop: AtomicBool,
}

impl fmt::Debug for NvmlGpuSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvmlGpuSource").finish_non_exhaustive()
    }
}

impl Drop for NvmlGpuSource {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
    }
}

impl NvmlGpuSource {
    /// Loads `libnvidia-ml.so.1` and initialises NVML (blocking: in async code call it through
    /// `spawn_blocking`, as [`crate::LocalGpu::detect`] does).
    ///
    /// Returns [`Error::Unavailable`] (source `"nvml"`) with an actionable reason when the
    /// library is missing, the driver is not loaded, permission is denied or the library and
    /// driver versions differ.
    pub fn new() -> Result<Self> {
        let nvml = Nvml::init().map_err(|e| unavailable(init_reason(&e)))?;
        // A library that loads but cannot count devices is as good as none.
        nvml.device_count()
            .map_err(|e| unavailable(runtime_reason(&e)))?;
        let inner = Arc::new(NvmlInner {
            nvml,
            known: Mutex::new(HashMap::new()),
            xid: XidWatch::default(),
            stop: AtomicBool::new(false),
        });
        crate::xid::start_watcher(&inner);
        Ok(Self {
            inner,
            host: HostSource::new(),
        })
    }

    /// One reading per device on the calling thread (blocking: ~40 ms of wall time per
    /// device). For one-shot tools and the CPU-cost benchmark; async code uses
    /// [`GpuSource::sample`], which runs this on a blocking thread.
    pub fn sample_blocking(&self) -> Result<Vec<GpuSample>> {
        self.inner.sample()
    }

    /// Runs `f` on a blocking thread with the NVML handle.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&NvmlInner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::backend(NVML, e))?
    }
}

#[async_trait]
impl GpuSource for NvmlGpuSource {
    fn name(&self) -> &'static str {
        NVML
    }

    async fn inventory(&self) -> Result<GpuInventory> {
        self.blocking(|inner| inner.inventory()).await
    }

    async fn sample(&self) -> Result<Vec<GpuSample>> {
        self.blocking(|inner| inner.sample()).await
    }

    async fn host(&self) -> Result<HostInfo> {
        self.host.read_async().await
    }

    /// NVML's `nvmlDeviceGetConfComputeGpuAttestationReport` per device. A device gets a
    /// report only where confidential-compute mode is **on** (as NVML says); otherwise, or
    /// when NVML refuses, it gets `not_available` with the reason. TEE support is never
    /// inferred from the model name.
    async fn attest(&self, nonce: [u8; ATTESTATION_NONCE_LEN]) -> HostAttestation {
        match self.blocking(move |inner| inner.attest(nonce)).await {
            Ok(devices) => HostAttestation::Devices { devices },
            Err(e) => HostAttestation::unavailable(reason_of(&e)),
        }
    }
}

/// A device handle, or why there is none.
enum Opened<'a> {
    Ok(Device<'a>, String),
    Failed { uuid: String, state: DeviceState },
}

/// Turns NVML answers into `Option`s: unsupported → `None`; a lost GPU is remembered so the
/// caller reports the device as lost instead of with partial metrics.
struct Reader<'u> {
    uuid: &'u str,
    lost: bool,
}

impl Reader<'_> {
    fn get<T>(&mut self, what: &'static str, r: std::result::Result<T, NvmlError>) -> Option<T> {
        if self.lost {
            return None;
        }
        match r {
            Ok(v) => Some(v),
            Err(NvmlError::GpuLost) | Err(NvmlError::ResetRequired) => {
                self.lost = true;
                None
            }
            Err(e) if is_absent(&e) => None,
            Err(e) => {
                tracing::debug!(uuid = self.uuid, metric = what, error = %e, "NVML read failed");
                None
            }
        }
    }
}

/// Errors that mean "this device/driver does not offer this value".
fn is_absent(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported
            | NvmlError::NotFound
            | NvmlError::NoData
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_)
            | NvmlError::NoPermission
    )
}

impl NvmlInner {
    fn lock_known(&self) -> MutexGuard<'_, HashMap<u32, String>> {
        // The map is only a cache of names; a poisoned lock still holds usable entries.
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn device_count(&self) -> Result<u32> {
        self.nvml
            .device_count()
            .map_err(|e| unavailable(runtime_reason(&e)))
    }

    fn open(&self, index: u32) -> Opened<'_> {
        let failed = |e: NvmlError| {
            let state = if matches!(e, NvmlError::NoPermission) {
                DeviceState::NoPermission
            } else {
                DeviceState::Lost
            };
            tracing::warn!(index, error = %e, "NVML cannot read GPU");
            let uuid = self
                .lock_known()
                .get(&index)
                .cloned()
                .unwrap_or_else(|| format!("nvml-index-{index}"));
            Opened::Failed { uuid, state }
        };
        let device = match self.nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        match device.uuid() {
            Ok(uuid) if !uuid.is_empty() => {
                self.lock_known().insert(index, uuid.clone());
                Opened::Ok(device, uuid)
            }
            Ok(_) => failed(NvmlError::Unknown),
            Err(e) => failed(e),
        }
    }

    fn inventory(&self) -> Result<GpuInventory> {
        let count = self.device_count()?;
        let mut devices = Vec::with_capacity(count as usize);
        for index in 0..count {
            devices.push(self.describe(index));
        }
        Ok(GpuInventory {
            devices,
            driver_version: self.nvml.sys_driver_version().ok(),
            cuda_version: self
                .nvml
                .sys_cuda_driver_version()
                .ok()
                .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
        })
    }

    fn describe(&self, index: u32) -> GpuDevice {
        let (device, uuid) = match self.open(index) {
            Opened::Ok(d, u) => (d, u),
            Opened::Failed { uuid, state } => {
                return GpuDevice {
                    index,
                    uuid,
                    name: String::new(),
                    pci_bus_id: None,
                    memory_total_bytes: None,
                    mig_enabled: None,
                    confidential_compute: None,
                    tier: None,
                    state,
                }
            }
        };
        let mut r = Reader {
            uuid: &uuid,
            lost: false,
        };
        let name = r.get("name", device.name()).unwrap_or_default();
        let pci_bus_id = r.get("pci_info", device.pci_info()).map(|p| p.bus_id);
        let memory_total_bytes = r.get("memory_info", device.memory_info()).map(|m| m.total);
        let mig_enabled = r
            .get("mig_mode", device.mig_mode())
            .map(|m| m.current == MIG_ENABLED);
        let confidential_compute = r.get("cc_settings", device.is_cc_enabled());
        let lost = r.lost;
        GpuDevice {
            index,
            tier: classify_tier(&name, memory_total_bytes),
            name,
            pci_bus_id,
            memory_total_bytes,
            mig_enabled,
            confidential_compute,
            state: if lost {
                DeviceState::Lost
            } else {
                DeviceState::Ok
            },
            uuid,
        }
    }

    fn sample(&self) -> Result<Vec<GpuSample>> {
        let count = self.device_count()?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            out.push(self.sample_device(index));
        }
        Ok(out)
    }

    fn sample_device(&self, index: u32) -> GpuSample {
        let at = now();
        let (device, uuid) = match self.open(index) {
            Opened::Ok(d, u) => (d, u),
            Opened::Failed { uuid, state } => {
                return GpuSample {
                    state,
                    ..GpuSample::empty(uuid, at)
                }
            }
        };
        let mut s = GpuSample::empty(uuid.clone(), at);
        let mut r = Reader {
            uuid: &uuid,
            lost: false,
        };
        if let Some(u) = r.get("utilization", device.utilization_rates()) {
            s.gpu_utilization_ratio = Some(percent_to_ratio(u.gpu));
            s.memory_utilization_ratio = Some(percent_to_ratio(u.memory));
        }
        if let Some(m) = r.get("memory_info", device.memory_info()) {
            s.memory_used_bytes = Some(m.used);
            s.memory_free_bytes = Some(m.free);
        }
        s.temperature_celsius = r
            .get("temperature", device.temperature(TemperatureSensor::Gpu))
            .map(f64::from);
        s.power_watts = r
            .get("power_usage", device.power_usage())
            .map(|mw| f64::from(mw) / 1e3);
        s.energy_joules_total = r
            .get("total_energy", device.total_energy_consumption())
            .map(|mj| mj as f64 / 1e3);
        s.sm_clock_hz = r
            .get("sm_clock", device.clock_info(Clock::SM))
            .map(mhz_to_hz);
        s.memory_clock_hz = r
            .get("memory_clock", device.clock_info(Clock::Memory))
            .map(mhz_to_hz);
        // NVML reports PCIe throughput in KB/s (1 KB = 1024 bytes, as nvidia-smi shows it).
        s.pcie_tx_bytes_per_second = r
            .get("pcie_tx", device.pcie_throughput(PcieUtilCounter::Send))
            .map(|kb| u64::from(kb) * 1024);
        s.pcie_rx_bytes_per_second = r
            .get("pcie_rx", device.pcie_throughput(PcieUtilCounter::Receive))
            .map(|kb| u64::from(kb) * 1024);
        s.pcie_replays_total = r
            .get("pcie_replays", device.pcie_replay_counter())
            .map(u64::from);
        s.ecc_corrected_total = r.get(
            "ecc_corrected",
            device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
        );
        s.ecc_uncorrected_total = r.get(
            "ecc_uncorrected",
            device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
        );
        s.processes = r
            .get("compute_processes", device.running_compute_processes())
            .map(|ps| {
                ps.into_iter()
                    .map(|p| GpuProcess {
                        pid: p.pid,
                        used_memory_bytes: match p.used_gpu_memory {
                            UsedGpuMemory::Used(b) => Some(b),
                            UsedGpuMemory::Unavailable => None,
                        },
                    })
                    .collect()
            });
        if r.lost {
            return GpuSample {
                state: DeviceState::Lost,
                ..GpuSample::empty(uuid, at)
            };
        }
        s.xid_events = self.xid.take(&uuid);
        s
    }

    fn attest(&self, nonce: [u8; ATTESTATION_NONCE_LEN]) -> Result<Vec<DeviceAttestation>> {
        let count = self.device_count()?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let (device, uuid) = match self.open(index) {
                Opened::Ok(d, u) => (d, u),
                Opened::Failed { uuid, state } => {
                    out.push(DeviceAttestation {
                        uuid,
                        attestation: Attestation::not_available(format!(
                            "the device cannot be read ({state:?})"
                        )),
                    });
                    continue;
                }
            };
            let attestation = match device.is_cc_enabled() {
                Ok(true) => match device.confidential_compute_gpu_attestation_report(nonce) {
                    Ok(report) => from_nvml(&report),
                    Err(e) => Attestation::not_available(format!(
                        "NVML returned no attestation report: {e}"
                    )),
                },
                Ok(false) => Attestation::not_available("confidential-compute mode is off"),
                Err(e) => Attestation::not_available(format!(
                    "the driver does not report a confidential-compute mode: {e}"
                )),
            };
            out.push(DeviceAttestation { uuid, attestation });
        }
        Ok(out)
    }
}

fn percent_to_ratio(p: u32) -> f64 {
    (f64::from(p) / 100.0).clamp(0.0, 1.0)
}

fn mhz_to_hz(mhz: u32) -> u64 {
    u64::from(mhz) * 1_000_000
}

pub(crate) fn unavailable(reason: String) -> Error {
    Error::Unavailable {
        source_name: NVML.into(),
        reason,
    }
}

/// Why NVML could not be initialised, in words an operator can act on.
pub(crate) fn init_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(le) => format!(
            "the NVML library libnvidia-ml.so.1 could not be loaded \
             (is the NVIDIA driver installed?): {le}"
        ),
        other => runtime_reason(other),
    }
}

/// Why NVML cannot answer, in words an operator can act on.
pub(crate) fn runtime_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".into(),
        NvmlError::NoPermission => {
            "no permission to talk to the NVIDIA driver (check access to /dev/nvidia*)".into()
        }
        NvmlError::LibRmVersionMismatch => {
            "the NVML library and the NVIDIA kernel driver versions differ \
             (reload the driver or reboot)"
                .into()
        }
        NvmlError::FailedToLoadSymbol(s) => {
            format!("the NVML library lacks a required function, the driver is too old: {s}")
        }
        NvmlError::FunctionNotFound => {
            "the NVML library lacks a required function, the driver is too old".into()
        }
        other => format!("NVML failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_conversions() {
        assert_eq!(percent_to_ratio(0), 0.0);
        assert_eq!(percent_to_ratio(100), 1.0);
        assert_eq!(percent_to_ratio(250), 1.0);
        assert_eq!(mhz_to_hz(1980), 1_980_000_000);
    }

    #[test]
    fn init_errors_have_actionable_reasons() {
        assert!(runtime_reason(&NvmlError::DriverNotLoaded).contains("driver is not loaded"));
        assert!(runtime_reason(&NvmlError::NoPermission).contains("permission"));
        assert!(runtime_reason(&NvmlError::LibRmVersionMismatch).contains("versions differ"));
    }

    #[test]
    fn unsupported_metrics_are_absent_and_lost_gpus_are_flagged() {
        let mut r = Reader {
            uuid: "GPU-x",
            lost: false,
        };
        assert_eq!(r.get::<u32>("a", Err(NvmlError::NotSupported)), None);
        assert!(!r.lost);
        assert_eq!(r.get("b", Ok(7u32)), Some(7));
        assert_eq!(r.get::<u32>("c", Err(NvmlError::GpuLost)), None);
        assert!(r.lost);
        // Once lost, nothing more is reported.
        assert_eq!(r.get("d", Ok(7u32)), None);
    }
}
