//! [`LocalGpu`]: what an agent reads its own hardware with.

use std::sync::Arc;

use bitsage_core::{DynGpuSource, Error, Result};

use crate::attestation::{DeviceAttestation, HostAttestation, ATTESTATION_NONCE_LEN};
use crate::host::HostOnlySource;
use crate::nvml::NvmlGpuSource;

/// The agent's view of its own hardware: NVML where it loads, otherwise a
/// [`HostOnlySource`] that reports the GPUs as unavailable with NVML's reason.
///
/// A GPU-less host is not an error: the worker is shown as such, with the reason.
#[derive(Debug, Clone)]
pub struct LocalGpu {
    source: DynGpuSource,
    nvml: Option<Arc<NvmlGpuSource>>,
    unavailable_reason: Option<String>,
}

impl LocalGpu {
    /// Tries NVML (on a blocking thread) and falls back to the host only.
    pub async fn detect() -> Self {
        match tokio::task::spawn_blocking(NvmlGpuSource::new).await {
            Ok(result) => Self::from_result(result),
            Err(e) => Self::from_result(Err(Error::backend("nvml", e))),
        }
    }

    /// [`LocalGpu::detect`] for synchronous callers (blocks while NVML initialises).
    pub fn detect_blocking() -> Self {
        Self::from_result(NvmlGpuSource::new())
    }

    fn from_result(result: Result<NvmlGpuSource>) -> Self {
        match result {
            Ok(nvml) => {
                let nvml = Arc::new(nvml);
                Self {
                    source: nvml.clone(),
                    nvml: Some(nvml),
                    unavailable_reason: None,
                }
            }
            Err(e) => {
                let host_only = HostOnlySource::from_error(&e);
                tracing::info!(reason = host_only.reason(), "no GPU data: NVML unavailable");
                Self {
                    unavailable_reason: Some(host_only.reason().to_owned()),
                    source: Arc::new(host_only),
                    nvml: None,
                }
            }
        }
    }

    /// The source to sample (NVML or host-only).
    pub fn source(&self) -> DynGpuSource {
        Arc::clone(&self.source)
    }

    /// Why NVML is not used, when it is not.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.unavailable_reason.as_deref()
    }

    /// Attestation reports for registration (see [`NvmlGpuSource::attestation_reports`]);
    /// [`Error::Unavailable`] with NVML's reason on a host without NVML.
    pub async fn attest(
        &self,
        nonce: [u8; ATTESTATION_NONCE_LEN],
    ) -> Result<Vec<DeviceAttestation>> {
        match &self.nvml {
            Some(nvml) => nvml.attestation_reports(nonce).await,
            None => Err(Error::Unavailable {
                source_name: "nvml".into(),
                reason: format!(
                    "attestation not available: {}",
                    self.unavailable_reason
                        .as_deref()
                        .unwrap_or("NVML is not loaded")
                ),
            }),
        }
    }

    /// [`LocalGpu::attest`] as one value for a report: the per-device outcomes, or
    /// `not_available` with the reason.
    pub async fn host_attestation(&self, nonce: [u8; ATTESTATION_NONCE_LEN]) -> HostAttestation {
        match self.attest(nonce).await {
            Ok(devices) => HostAttestation::Devices { devices },
            Err(e) => HostAttestation::NotAvailable {
                reason: crate::report::reason_of(&e),
            },
        }
    }
}
