//! GPU and host inventory and samples, as reported by a [`crate::GpuSource`].
//!
//! Units follow Prometheus conventions: bytes, watts, joules, hertz, degrees Celsius, ratios
//! in `0..=1`. Every metric a device may not support is an `Option`: `None` means "the device
//! did not report it", never zero.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::Error;

/// The hardware classes of the staking contract, from consumer cards to frontier accelerators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuTier {
    /// Gaming / consumer cards.
    Consumer,
    /// Professional workstation cards.
    Workstation,
    /// Data-center cards (e.g. A10, L4, L40S).
    DataCenter,
    /// Large data-center accelerators (e.g. A100, H100 PCIe).
    Enterprise,
    /// The newest, largest accelerators (e.g. H100 SXM, H200, B200).
    Frontier,
}

impl GpuTier {
    /// All tiers, lowest first; the index is the on-chain enum index.
    pub const ALL: [GpuTier; 5] = [
        GpuTier::Consumer,
        GpuTier::Workstation,
        GpuTier::DataCenter,
        GpuTier::Enterprise,
        GpuTier::Frontier,
    ];

    /// The on-chain enum index (0 = Consumer … 4 = Frontier).
    pub fn index(&self) -> u8 {
        *self as u8
    }

    /// From the on-chain enum index.
    pub fn from_index(i: u64) -> Result<Self, Error> {
        usize::try_from(i)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or_else(|| Error::invalid("gpu tier", format!("unknown tier index {i}")))
    }
}

impl fmt::Display for GpuTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            GpuTier::Consumer => "consumer",
            GpuTier::Workstation => "workstation",
            GpuTier::DataCenter => "data_center",
            GpuTier::Enterprise => "enterprise",
            GpuTier::Frontier => "frontier",
        };
        f.write_str(s)
    }
}

/// Health of one device as NVML sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// The device answers.
    #[default]
    Ok,
    /// The device fell off the bus / is lost (NVML `GpuLost`).
    Lost,
    /// The process lacks permission to query the device.
    NoPermission,
}

/// One GPU's identity and static properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// NVML index on the host.
    pub index: u32,
    /// The GPU UUID (`GPU-…`), stable across reboots; the key of its samples.
    pub uuid: String,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// PCI bus id, e.g. `00000000:18:00.0`.
    #[serde(default)]
    pub pci_bus_id: Option<String>,
    /// Total framebuffer memory, bytes.
    #[serde(default)]
    pub memory_total_bytes: Option<u64>,
    /// Whether MIG mode is enabled (current mode).
    #[serde(default)]
    pub mig_enabled: Option<bool>,
    /// Whether confidential-compute mode is on.
    #[serde(default)]
    pub confidential_compute: Option<bool>,
    /// The staking tier this device qualifies for.
    #[serde(default)]
    pub tier: Option<GpuTier>,
    /// Device health.
    #[serde(default)]
    pub state: DeviceState,
}

/// A host's GPUs plus driver-wide versions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GpuInventory {
    /// The devices (may be empty).
    pub devices: Vec<GpuDevice>,
    /// Kernel driver version, e.g. `580.65.06`.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// CUDA driver API version, e.g. `13.0`.
    #[serde(default)]
    pub cuda_version: Option<String>,
}

/// An XID error reported by the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XidEvent {
    /// The XID code.
    pub code: u64,
    /// When it was observed.
    pub at: Timestamp,
}

/// A process running on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// OS process id.
    pub pid: u32,
    /// GPU memory used by it, bytes.
    #[serde(default)]
    pub used_memory_bytes: Option<u64>,
}

/// One reading of one device's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// The device's UUID (matches [`GpuDevice::uuid`]).
    pub uuid: String,
    /// When the reading was taken.
    pub at: Timestamp,
    /// Device state at the time of the reading.
    #[serde(default)]
    pub state: DeviceState,
    /// GPU utilization ratio, 0–1.
    #[serde(default)]
    pub gpu_utilization_ratio: Option<f64>,
    /// Memory-controller utilization ratio, 0–1.
    #[serde(default)]
    pub memory_utilization_ratio: Option<f64>,
    /// Framebuffer used, bytes.
    #[serde(default)]
    pub memory_used_bytes: Option<u64>,
    /// Framebuffer free, bytes.
    #[serde(default)]
    pub memory_free_bytes: Option<u64>,
    /// Core temperature, °C.
    #[serde(default)]
    pub temperature_celsius: Option<f64>,
    /// Power draw, watts.
    #[serde(default)]
    pub power_watts: Option<f64>,
    /// Energy consumed since the driver loaded, joules (a counter).
    #[serde(default)]
    pub energy_joules_total: Option<f64>,
    /// SM clock, hertz.
    #[serde(default)]
    pub sm_clock_hz: Option<u64>,
    /// Memory clock, hertz.
    #[serde(default)]
    pub memory_clock_hz: Option<u64>,
    /// PCIe transmit throughput, bytes per second.
    #[serde(default)]
    pub pcie_tx_bytes_per_second: Option<u64>,
    /// PCIe receive throughput, bytes per second.
    #[serde(default)]
    pub pcie_rx_bytes_per_second: Option<u64>,
    /// PCIe replay counter (a counter).
    #[serde(default)]
    pub pcie_replays_total: Option<u64>,
    /// Corrected ECC errors, volatile (a counter).
    #[serde(default)]
    pub ecc_corrected_total: Option<u64>,
    /// Uncorrected ECC errors, volatile (a counter).
    #[serde(default)]
    pub ecc_uncorrected_total: Option<u64>,
    /// XID events seen since the previous sample.
    #[serde(default)]
    pub xid_events: Option<Vec<XidEvent>>,
    /// Compute processes running on the device.
    #[serde(default)]
    pub processes: Option<Vec<GpuProcess>>,
}

impl GpuSample {
    /// A sample carrying no metric at all (every field `None`), to be filled by a source.
    pub fn empty(uuid: impl Into<String>, at: Timestamp) -> Self {
        Self {
            uuid: uuid.into(),
            at,
            state: DeviceState::Ok,
            gpu_utilization_ratio: None,
            memory_utilization_ratio: None,
            memory_used_bytes: None,
            memory_free_bytes: None,
            temperature_celsius: None,
            power_watts: None,
            energy_joules_total: None,
            sm_clock_hz: None,
            memory_clock_hz: None,
            pcie_tx_bytes_per_second: None,
            pcie_rx_bytes_per_second: None,
            pcie_replays_total: None,
            ecc_corrected_total: None,
            ecc_uncorrected_total: None,
            xid_events: None,
            processes: None,
        }
    }
}

/// The host a worker runs on, so a GPU-less worker is shown as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// CPU model name, when the OS reports it.
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// Logical CPU cores.
    pub logical_cores: u32,
    /// 1-minute load average, when the OS reports it.
    #[serde(default)]
    pub load_average_1m: Option<f64>,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Available memory, bytes.
    #[serde(default)]
    pub memory_available_bytes: Option<u64>,
}
