//! The hardware report an agent registers with, read from its GPU source.

use std::time::Duration;

use bitsage_core::crypto::Hash32;
use bitsage_core::gpu::{GpuDevice, HostInfo};
use bitsage_core::node::HardwareReport;
use bitsage_core::GpuSource;
use bitsage_gpu::{GpuReport, GpuStatus};
use blake2::{Blake2s256, Digest};

/// Domain tag of the hardware identity hash.
const HARDWARE_HASH_DOMAIN: &[u8] = b"bitsage/hardware/v1";

/// Reads `source` once (bounded by `timeout`) into a registration report: the GPUs (empty on
/// a GPU-less host, with the reason), the host section, and a hash of the hardware identity.
/// Never fails: what cannot be read is reported as missing, with the reason.
pub async fn hardware_report(source: &dyn GpuSource, timeout: Duration) -> HardwareReport {
    let report = match tokio::time::timeout(timeout, GpuReport::collect(source)).await {
        Ok(r) => r,
        Err(_) => {
            return HardwareReport {
                gpu_unavailable_reason: Some(format!(
                    "reading the hardware timed out after {timeout:?}"
                )),
                ..HardwareReport::default()
            }
        }
    };
    let gpu_unavailable_reason = match report.status {
        GpuStatus::Unavailable => report.reason.clone(),
        GpuStatus::Ok if report.gpus.is_empty() => Some(format!("{}: no GPU found", report.source)),
        GpuStatus::Ok => None,
    };
    let hardware_hash = Some(hardware_hash(&report.gpus, report.host.as_ref()));
    HardwareReport {
        gpus: report.gpus,
        driver_version: report.driver_version,
        cuda_version: report.cuda_version,
        host: report.host,
        gpu_unavailable_reason,
        hardware_hash,
        attestation: None,
    }
}

/// A digest of what identifies this machine: GPU UUIDs (sorted), CPU model, core count and
/// total memory. Readings that change (load, free memory) are left out.
pub fn hardware_hash(gpus: &[GpuDevice], host: Option<&HostInfo>) -> Hash32 {
    let mut uuids: Vec<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
    uuids.sort_unstable();
    let mut h = Blake2s256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(HARDWARE_HASH_DOMAIN);
    field(&(uuids.len() as u64).to_be_bytes());
    for u in uuids {
        field(u.as_bytes());
    }
    match host {
        Some(host) => {
            field(host.cpu_model.as_deref().unwrap_or("").as_bytes());
            field(&host.logical_cores.to_be_bytes());
            field(&host.memory_total_bytes.to_be_bytes());
        }
        None => field(b""),
    }
    Hash32(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitsage_gpu::HostOnlySource;

    #[tokio::test]
    async fn a_gpu_less_host_reports_the_reason_and_its_host() {
        let src = HostOnlySource::new("nvml", "libnvidia-ml.so.1 not found");
        let hw = hardware_report(&src, Duration::from_secs(10)).await;
        assert!(hw.gpus.is_empty());
        assert_eq!(
            hw.gpu_unavailable_reason.as_deref(),
            Some("libnvidia-ml.so.1 not found")
        );
        assert!(hw.host.as_ref().is_some_and(|h| h.logical_cores >= 1));
        // The same machine hashes the same, whatever its load.
        let again = hardware_report(&src, Duration::from_secs(10)).await;
        assert_eq!(hw.hardware_hash, again.hardware_hash);
        assert!(hw.hardware_hash.is_some());
    }
}
