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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

    /// The tier's name as the staking contract spells it (`DataCenter`).
    pub fn label(&self) -> &'static str {
        match self {
            GpuTier::Consumer => "Consumer",
            GpuTier::Workstation => "Workstation",
            GpuTier::DataCenter => "DataCenter",
            GpuTier::Enterprise => "Enterprise",
            GpuTier::Frontier => "Frontier",
        }
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct XidEvent {
    /// The XID code.
    pub code: u64,
    /// When it was observed.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub at: Timestamp,
}

/// A process running on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuProcess {
    /// OS process id.
    pub pid: u32,
    /// GPU memory used by it, bytes.
    #[serde(default)]
    pub used_memory_bytes: Option<u64>,
}

/// One reading of one device's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuSample {
    /// The device's UUID (matches [`GpuDevice::uuid`]).
    pub uuid: String,
    /// When the reading was taken.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
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

/// Most XID events or processes one sample may list.
pub const MAX_SAMPLE_LIST_LEN: usize = 256;

impl GpuSample {
    /// Checks a reading that came from outside (a heartbeat): a UUID of 1 to 128 printable
    /// characters, ratios in `0..=1`, every float finite and not negative (temperature may be
    /// negative but must be finite), lists bounded by [`MAX_SAMPLE_LIST_LEN`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::invalid("GPU sample", reason));
        if self.uuid.is_empty() || self.uuid.len() > 128 || self.uuid.chars().any(char::is_control)
        {
            return bad("uuid must be 1 to 128 printable characters".into());
        }
        for (name, v) in [
            ("gpu_utilization_ratio", self.gpu_utilization_ratio),
            ("memory_utilization_ratio", self.memory_utilization_ratio),
        ] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return bad(format!("{name} must lie in 0..=1"));
                }
            }
        }
        for (name, v) in [
            ("power_watts", self.power_watts),
            ("energy_joules_total", self.energy_joules_total),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return bad(format!("{name} must be finite and not negative"));
                }
            }
        }
        if self.temperature_celsius.is_some_and(|t| !t.is_finite()) {
            return bad("temperature_celsius must be finite".into());
        }
        if self
            .xid_events
            .as_ref()
            .is_some_and(|x| x.len() > MAX_SAMPLE_LIST_LEN)
            || self
                .processes
                .as_ref()
                .is_some_and(|p| p.len() > MAX_SAMPLE_LIST_LEN)
        {
            return bad(format!(
                "at most {MAX_SAMPLE_LIST_LEN} XID events or processes"
            ));
        }
        Ok(())
    }

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
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

/// The health of an agent's GPU collector (its background sampler), as the agent reports it
/// in each heartbeat so the coordinator can export it (`bitsage_gpu_collector_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuCollectorStatus {
    /// The sampled source's name (`"nvml"`, `"host"`, `"fixture"`, ...).
    pub source: String,
    /// Whether the latest sampling attempt succeeded.
    pub up: bool,
    /// Why the latest attempt failed, when it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Successful samples since the agent started (a counter).
    pub samples_total: u64,
    /// Failed sampling attempts since the agent started (a counter).
    pub sample_errors_total: u64,
    /// Age of the latest good sample when the heartbeat was sent, seconds; `None` before the
    /// first good sample.
    #[serde(default)]
    pub last_sample_age_seconds: Option<f64>,
}

/// Longest [`GpuCollectorStatus::last_error`] a heartbeat may carry, bytes.
pub const MAX_COLLECTOR_ERROR_LEN: usize = 1024;

/// The [`crate::GpuSource`] name of a host without usable GPUs (`bitsage-gpu`'s
/// `HostOnlySource`): a collector of this source has nothing to sample, which is not a failure.
pub const HOST_ONLY_SOURCE: &str = "host-only";

impl GpuCollectorStatus {
    /// Whether the collector samples a host without GPUs ([`HOST_ONLY_SOURCE`]): its `up` says
    /// nothing about the node's health and is not exported.
    pub fn is_cpu_only(&self) -> bool {
        self.source == HOST_ONLY_SOURCE
    }

    /// Checks a status that came from outside (a heartbeat): a source name of 1 to 32
    /// printable characters, an error of at most [`MAX_COLLECTOR_ERROR_LEN`] bytes, an age that
    /// is finite and not negative.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| Err(Error::invalid("GPU collector status", reason));
        if self.source.is_empty()
            || self.source.len() > 32
            || self.source.chars().any(char::is_control)
        {
            return bad("source must be 1 to 32 printable characters");
        }
        if self
            .last_error
            .as_ref()
            .is_some_and(|e| e.len() > MAX_COLLECTOR_ERROR_LEN)
        {
            return bad("last_error is too long");
        }
        if self
            .last_sample_age_seconds
            .is_some_and(|a| !a.is_finite() || a < 0.0)
        {
            return bad("last_sample_age_seconds must be finite and not negative");
        }
        Ok(())
    }
}

/// A collector status as the coordinator stored it: the heartbeat's receive time and what it
/// said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportedCollector {
    /// When the coordinator received the heartbeat that carried it.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub at: Timestamp,
    /// The status.
    pub status: GpuCollectorStatus,
}

impl GpuTier {
    /// The least framebuffer (decimal bytes) a device must report to qualify for this tier;
    /// see [`classify_tier`]. Floors sit a little under the marketed size so that e.g. an
    /// "80 GB" H100 (which reports 81 559 MiB) clears the Frontier floor.
    pub fn min_memory_bytes(&self) -> u64 {
        const GB: u64 = 1_000_000_000;
        match self {
            GpuTier::Consumer | GpuTier::Workstation => 0,
            GpuTier::DataCenter => 12 * GB,
            GpuTier::Enterprise => 32 * GB,
            GpuTier::Frontier => 70 * GB,
        }
    }
}

/// Classifies a GPU into a staking [`GpuTier`] from its NVML name and reported framebuffer.
///
/// The name is split into upper-case tokens (on spaces, `-` and `_`), so `A10` never matches
/// `A100`. The first matching row of the table gives the **model tier**:
///
/// | model tier  | name tokens (examples of NVML names)                                              |
/// |-------------|-----------------------------------------------------------------------------------|
/// | Frontier    | `B200` `B100` `B300` `GB200` `GB300` `H200` `GH200`; `H100`/`H800` unless `PCIE` or `NVL` (`NVIDIA H100 80GB HBM3`, `NVIDIA H200`) |
/// | Enterprise  | `H100`/`H800` with `PCIE` or `NVL`; `A100` `A800` (`NVIDIA H100 PCIe`, `NVIDIA A100-SXM4-80GB`) |
/// | DataCenter  | `L40S` `L40` `L20` `L4` `A40` `A30` `A16` `A10` `A2` `T4` `V100` `P100` (`NVIDIA L4`) |
/// | Workstation | `QUADRO`; `RTX` with `A2000`…`A6000`, `ADA` or `PRO` (`NVIDIA RTX A6000`, `NVIDIA RTX 6000 Ada Generation`) |
/// | Consumer    | `GEFORCE` `TITAN` (`NVIDIA GeForce RTX 4090`)                                     |
/// | none        | anything else: unknown models are **not** classified (`None`), never guessed       |
///
/// The framebuffer then caps the tier: where `memory_total_bytes` is known, the result is the
/// model tier or the highest tier whose floor ([`GpuTier::min_memory_bytes`]) the device meets,
/// whichever is lower. Floors: Frontier 70 GB, Enterprise 32 GB, DataCenter 12 GB,
/// Workstation and Consumer none. So a 20 GB vGPU slice of an H100 is DataCenter, not
/// Frontier. Where the framebuffer is unknown, the model tier stands.
pub fn classify_tier(name: &str, memory_total_bytes: Option<u64>) -> Option<GpuTier> {
    let upper = name.to_ascii_uppercase();
    let tokens: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|t| !t.is_empty())
        .collect();
    let has = |t: &str| tokens.contains(&t);
    let any = |set: &[&str]| set.iter().any(|t| has(t));
    let workstation_ampere = tokens
        .iter()
        .any(|t| t.len() == 5 && t.starts_with('A') && t[1..].bytes().all(|b| b.is_ascii_digit()));

    let model = if any(&["B200", "B100", "B300", "GB200", "GB300", "H200", "GH200"]) {
        GpuTier::Frontier
    } else if any(&["H100", "H800"]) {
        if any(&["PCIE", "NVL"]) {
            GpuTier::Enterprise
        } else {
            GpuTier::Frontier
        }
    } else if any(&["A100", "A800"]) {
        GpuTier::Enterprise
    } else if any(&[
        "L40S", "L40", "L20", "L4", "A40", "A30", "A16", "A10", "A2", "T4", "V100", "P100",
    ]) {
        GpuTier::DataCenter
    } else if has("QUADRO") || (has("RTX") && (workstation_ampere || any(&["ADA", "PRO"]))) {
        GpuTier::Workstation
    } else if any(&["GEFORCE", "TITAN"]) {
        GpuTier::Consumer
    } else {
        return None;
    };

    let Some(memory) = memory_total_bytes else {
        return Some(model);
    };
    let by_memory = GpuTier::ALL
        .iter()
        .rev()
        .copied()
        .find(|t| memory >= t.min_memory_bytes())
        .unwrap_or(GpuTier::Consumer);
    Some(model.min(by_memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn tier_table_classifies_known_models() {
        let cases: &[(&str, Option<u64>, Option<GpuTier>)] = &[
            // NVML reports 81 559 MiB for an H100 SXM5 80GB.
            (
                "NVIDIA H100 80GB HBM3",
                Some(81_559 * (1 << 20)),
                Some(GpuTier::Frontier),
            ),
            ("NVIDIA H200", Some(141 * GIB), Some(GpuTier::Frontier)),
            (
                "NVIDIA H100 PCIe",
                Some(80 * GIB),
                Some(GpuTier::Enterprise),
            ),
            (
                "NVIDIA A100-SXM4-80GB",
                Some(80 * GIB),
                Some(GpuTier::Enterprise),
            ),
            (
                "NVIDIA A100-PCIE-40GB",
                Some(40 * GIB),
                Some(GpuTier::Enterprise),
            ),
            (
                "NVIDIA GeForce RTX 4090",
                Some(24 * GIB),
                Some(GpuTier::Consumer),
            ),
            ("NVIDIA L4", Some(24 * GIB), Some(GpuTier::DataCenter)),
            ("NVIDIA A10", Some(24 * GIB), Some(GpuTier::DataCenter)),
            (
                "NVIDIA RTX A6000",
                Some(48 * GIB),
                Some(GpuTier::Workstation),
            ),
            (
                "NVIDIA RTX 6000 Ada Generation",
                Some(48 * GIB),
                Some(GpuTier::Workstation),
            ),
            ("NVIDIA B200", None, Some(GpuTier::Frontier)),
        ];
        for (name, mem, want) in cases {
            assert_eq!(classify_tier(name, *mem), *want, "{name}");
        }
    }

    #[test]
    fn unknown_models_are_not_classified() {
        assert_eq!(classify_tier("Matrox G200eW", Some(16 * GIB)), None);
        assert_eq!(classify_tier("", None), None);
        // A big framebuffer alone never earns a tier.
        assert_eq!(
            classify_tier("Some Future Accelerator", Some(192 * GIB)),
            None
        );
    }

    #[test]
    fn framebuffer_caps_the_model_tier() {
        // A 20 GB vGPU profile of an H100 is not a Frontier device.
        assert_eq!(
            classify_tier("NVIDIA H100 80GB HBM3", Some(20 * GIB)),
            Some(GpuTier::DataCenter)
        );
        // Unknown framebuffer: the model tier stands.
        assert_eq!(
            classify_tier("NVIDIA H100 80GB HBM3", None),
            Some(GpuTier::Frontier)
        );
        // Lower tiers have no floor that a real card misses.
        assert_eq!(
            classify_tier("NVIDIA GeForce RTX 3060", Some(12 * GIB)),
            Some(GpuTier::Consumer)
        );
    }
}
