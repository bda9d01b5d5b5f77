//! [`GpuReport`]: one reading of a host's GPUs and host section, as `bitsage-agent gpu --json`
//! prints it and as [`crate::FixtureGpuSource`] replays it.

use bitsage_core::gpu::{GpuDevice, GpuInventory, GpuSample, HostInfo};
use bitsage_core::time::{now, Timestamp};
use bitsage_core::{Error, GpuSource};
use serde::{Deserialize, Serialize};

use bitsage_core::attestation::HostAttestation;

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
    /// Confidential-compute attestation, when it was asked for (`gpu --attest-nonce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<HostAttestation>,
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
        let mut source = src.name().to_owned();
        let (status, reason, inventory, samples) = match (inventory, samples) {
            (Ok(inv), Ok(samples)) => (GpuStatus::Ok, None, inv, samples),
            (Ok(inv), Err(e)) => (
                GpuStatus::Ok,
                Some(format!("sample failed: {}", reason_of(&e))),
                inv,
                Vec::new(),
            ),
            (Err(e), _) => {
                // Name what is missing ("nvml"), not the stand-in that reports it.
                if let Error::Unavailable { source_name, .. } = &e {
                    source.clone_from(source_name);
                }
                (
                    GpuStatus::Unavailable,
                    Some(reason_of(&e)),
                    GpuInventory::default(),
                    Vec::new(),
                )
            }
        };
        let (host, host_unavailable_reason) = match host {
            Ok(h) => (Some(h), None),
            Err(e) => (None, Some(reason_of(&e))),
        };
        GpuReport {
            source,
            status,
            reason,
            collected_at: now(),
            driver_version: inventory.driver_version,
            cuda_version: inventory.cuda_version,
            gpus: inventory.devices,
            samples,
            host,
            host_unavailable_reason,
            attestation: None,
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

impl GpuReport {
    /// A short human-readable table (what `bitsage-agent gpu` prints without `--json`);
    /// absent values show as `-`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = match (self.status, &self.reason) {
            (GpuStatus::Ok, None) => writeln!(out, "GPU source: {} (ok)", self.source),
            (GpuStatus::Ok, Some(r)) => writeln!(out, "GPU source: {} (ok; {r})", self.source),
            (GpuStatus::Unavailable, r) => writeln!(
                out,
                "GPU source: {} unavailable: {}",
                self.source,
                r.as_deref().unwrap_or("no reason given")
            ),
        };
        if let Some(a) = &self.attestation {
            let _ = match a {
                HostAttestation::NotAvailable { reason } => {
                    writeln!(out, "Attestation: not available: {reason}")
                }
                HostAttestation::Devices { devices } => {
                    for d in devices {
                        let _ = match &d.attestation {
                            crate::Attestation::Report { report_hex, .. } => writeln!(
                                out,
                                "Attestation {}: report ({} bytes)",
                                d.uuid,
                                report_hex.len() / 2
                            ),
                            crate::Attestation::NotAvailable { reason } => {
                                writeln!(out, "Attestation {}: not available: {reason}", d.uuid)
                            }
                        };
                    }
                    Ok(())
                }
            };
        }
        if let Some(note) = &self.note {
            let _ = writeln!(out, "Note: {note}");
        }
        if self.status == GpuStatus::Ok {
            let _ = writeln!(
                out,
                "Driver {}, CUDA {}",
                dash(self.driver_version.as_deref()),
                dash(self.cuda_version.as_deref())
            );
            if self.gpus.is_empty() {
                let _ = writeln!(out, "No GPUs.");
            } else {
                let _ = writeln!(
                    out,
                    "{:<3} {:<28} {:<14} {:>9} {:>5} {:>9} {:>5} {:>7} {:<11} STATE",
                    "IDX", "NAME", "UUID", "MEMORY", "UTIL", "MEM USED", "TEMP", "POWER", "TIER",
                );
            }
            for d in &self.gpus {
                let s = self.samples.iter().find(|s| s.uuid == d.uuid);
                let state = s.map(|s| s.state).unwrap_or(d.state);
                let _ = writeln!(
                    out,
                    "{:<3} {:<28} {:<14} {:>9} {:>5} {:>9} {:>5} {:>7} {:<11} {}",
                    d.index,
                    truncate(&d.name, 28),
                    truncate(&d.uuid, 14),
                    dash(d.memory_total_bytes.map(gib).as_deref()),
                    dash(
                        s.and_then(|s| s.gpu_utilization_ratio)
                            .map(|r| format!("{:.0}%", r * 100.0))
                            .as_deref()
                    ),
                    dash(s.and_then(|s| s.memory_used_bytes).map(gib).as_deref()),
                    dash(
                        s.and_then(|s| s.temperature_celsius)
                            .map(|t| format!("{t:.0}C"))
                            .as_deref()
                    ),
                    dash(
                        s.and_then(|s| s.power_watts)
                            .map(|w| format!("{w:.0} W"))
                            .as_deref()
                    ),
                    dash(d.tier.map(|t| t.to_string()).as_deref()),
                    serde_json::to_value(state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                );
            }
        }
        let _ = match (&self.host, &self.host_unavailable_reason) {
            (Some(h), _) => writeln!(
                out,
                "Host: {}, {} logical cores, load {}, memory {} available of {}",
                dash(h.cpu_model.as_deref()),
                h.logical_cores,
                dash(h.load_average_1m.map(|l| format!("{l:.2}")).as_deref()),
                dash(h.memory_available_bytes.map(gib).as_deref()),
                gib(h.memory_total_bytes)
            ),
            (None, r) => writeln!(
                out,
                "Host: unavailable: {}",
                r.as_deref().unwrap_or("no reason given")
            ),
        };
        out
    }
}

fn dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('~');
        t
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
        let text = r.to_text();
        assert_eq!(r.source, "nvml");
        assert!(text.starts_with("GPU source: nvml unavailable: libnvidia-ml.so.1 missing"));
        assert!(text.contains("Host: "));
    }

    #[cfg(feature = "test-utils")]
    #[tokio::test]
    async fn the_table_shows_absent_values_as_dashes() {
        let src = crate::FixtureGpuSource::synthetic_2xh100().unwrap();
        let text = GpuReport::collect(&src).await.to_text();
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("0 ") || l.starts_with("1 "))
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(
            rows[0].contains("87%") && rows[0].contains("512 W") && rows[0].contains("frontier")
        );
        assert!(text.contains("Driver 580.65.06, CUDA 13.0"));
        assert!(text.contains("Synthetic CPU (fixture), 64 logical cores"));
    }
}
