//! [`GpuReport`]: one reading of a host's GPUs and host section, as `bitsage-agent gpu --json`
//! prints it and as [`crate::FixtureGpuSource`] replays it.

use bitsage_core::gpu::{GpuDevice, GpuInventory, GpuSample, HostInfo};
use bitsage_core::time::{now, Timestamp};
use bitsage_core::{Error, GpuSource};
use serde::{Deserialize, Serialize};

/// Whether GPU data could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuStatus {
    /// The GPU source answered (the GPU list may still be empty).
    Ok,
    /// The GPU source could not answer; `reason` says why and the GPU list is empty.
    Unavailable,
}

/// One reading of a host: inventory, one sample per device, the host section.
///
/// Absent metrics are `null` in JSON (never 0). When the GPU source is unavailable, `status`
/// is `"unavailable"`, `reason` says why and `gpus`/`samples` are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    /// The GPU source that produced it (`"nvml"`, `"host-only"`, `"fixture"`).
    pub source: String,
    /// Whether GPU data could be read.
    pub status: GpuStatus,
    /// Why GPU data is missing, when `status` is `unavailable` (or a sample failed).
    #[serde(default)]
    pub reason: Option<String>,
    /// When the report was collected.
    pub collected_at: Timestamp,
    /// Kernel driver version.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// CUDA driver API version.
    #[serde(default)]
    pub cuda_version: Option<String>,
    /// The GPUs (empty on a GPU-less host).
    #[serde(default)]
    pub gpus: Vec<GpuDevice>,
    /// One reading per GPU.
    #[serde(default)]
    pub samples: Vec<GpuSample>,
    /// The host (CPU, memory), when it could be read.
    #[serde(default)]
    pub host: Option<HostInfo>,
    /// Why the host section is missing, when it is.
    #[serde(default)]
    pub host_unavailable_reason: Option<String>,
    /// Free text about where the data came from (fixtures say they are synthetic here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl GpuReport {
    /// Reads `src` once: inventory, sample and host, concurrently.
    ///
    /// Never fails: an unavailable source gives `status: unavailable` with the reason and
    /// empty lists; a failed host read gives `host: null` with `host_unavailable_reason`.
    pub async fn collect(src: &dyn GpuSource) -> Self {
        let (inventory, samples, host) = tokio::join!(src.inventory(), src.sample(), src.host());
        let (status, reason, inventory, samples) = match (inventory, samples) {
            (Ok(inv), Ok(samples)) => (GpuStatus::Ok, None, inv, samples),
            (Ok(inv), Err(e)) => (
                GpuStatus::Ok,
                Some(format!("sample failed: {}", reason_of(&e))),
                inv,
                Vec::new(),
            ),
            (Err(e), _) => (
                GpuStatus::Unavailable,
                Some(reason_of(&e)),
                GpuInventory::default(),
                Vec::new(),
            ),
        };
        let (host, host_unavailable_reason) = match host {
            Ok(h) => (Some(h), None),
            Err(e) => (None, Some(reason_of(&e))),
        };
        GpuReport {
            source: src.name().to_owned(),
            status,
            reason,
            collected_at: now(),
            driver_version: inventory.driver_version,
            cuda_version: inventory.cuda_version,
            gpus: inventory.devices,
            samples,
            host,
            host_unavailable_reason,
            note: None,
        }
    }

    /// The inventory part.
    pub fn inventory(&self) -> GpuInventory {
        GpuInventory {
            devices: self.gpus.clone(),
            driver_version: self.driver_version.clone(),
            cuda_version: self.cuda_version.clone(),
        }
    }
}

/// The reason of an [`Error::Unavailable`], otherwise the error's text.
pub(crate) fn reason_of(e: &Error) -> String {
    match e {
        Error::Unavailable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostOnlySource;

    #[tokio::test]
    async fn unavailable_source_gives_empty_lists_and_the_reason() {
        let r = GpuReport::collect(&HostOnlySource::new("nvml", "libnvidia-ml.so.1 missing")).await;
        assert_eq!(r.status, GpuStatus::Unavailable);
        assert_eq!(r.reason.as_deref(), Some("libnvidia-ml.so.1 missing"));
        assert!(r.gpus.is_empty() && r.samples.is_empty());
        assert!(r.host.is_some());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "unavailable");
        assert_eq!(json["gpus"], serde_json::json!([]));
        let back: GpuReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
