//! The real sources on this machine: NVML (its unavailable path where there is no driver,
//! as in CI), the host-only fallback, each through the core conformance suite.

use bitsage_core::conformance::gpu::run_all;
use bitsage_core::{Error, GpuSource};
use bitsage_gpu::{HostAttestation, HostOnlySource, LocalGpu, NvmlGpuSource};

/// Whether the NVML library is present in a standard place (then this host may have GPUs).
fn nvml_library_present() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/nvidia/lib64",
    ]
    .iter()
    .any(|d| std::path::Path::new(d).join("libnvidia-ml.so.1").exists())
}

#[tokio::test]
async fn nvml_reports_exactly_what_this_host_has() {
    match NvmlGpuSource::new() {
        Ok(src) => {
            // A GPU host: the real data path.
            run_all(&src).await;
            let inv = src.inventory().await.unwrap();
            assert!(inv.driver_version.is_some());
        }
        Err(Error::Unavailable {
            source_name,
            reason,
        }) => {
            assert_eq!(source_name, "nvml");
            if !nvml_library_present() {
                assert!(
                    reason.contains("libnvidia-ml.so.1"),
                    "the reason must name the missing library: {reason}"
                );
            }
            // What the agent then runs with: no devices, the reason, a real host section.
            let local = LocalGpu::detect().await;
            assert_eq!(local.unavailable_reason(), Some(reason.as_str()));
            let src = local.source();
            run_all(src.as_ref()).await;
            assert!(matches!(
                src.inventory().await,
                Err(Error::Unavailable { .. })
            ));
            let host = src.host().await.unwrap();
            assert!(host.logical_cores >= 1 && host.memory_total_bytes > 0);
            match src.attest([7; 32]).await {
                HostAttestation::NotAvailable { reason } => {
                    assert!(reason.starts_with("attestation not available"));
                    assert!(reason.contains(local.unavailable_reason().unwrap_or("?")));
                }
                other => panic!("attestation without NVML: {other:?}"),
            }
        }
        Err(other) => panic!("NVML init must map to Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn host_only_source_passes_the_conformance_suite() {
    run_all(&HostOnlySource::new(
        "nvml",
        "no NVIDIA driver on this host",
    ))
    .await;
}
