//! [`LocalGpu`]: what an agent reads its own hardware with.

use std::sync::Arc;

use bitsage_core::{DynGpuSource, Error, Result};

use crate::host::HostOnlySource;
use crate::nvml::NvmlGpuSource;

/// The agent's view of its own hardware: NVML where it loads, otherwise a
/// [`HostOnlySource`] that reports the GPUs (and attestation) as unavailable with NVML's
/// reason.
///
/// A GPU-less host is not an error: the worker is shown as such, with the reason.
#[derive(Debug, Clone)]
pub struct LocalGpu {
    source: DynGpuSource,
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
            Ok(nvml) => Self {
                source: Arc::new(nvml),
                unavailable_reason: None,
            },
            Err(e) => {
                let host_only = HostOnlySource::from_error(&e);
                tracing::info!(reason = host_only.reason(), "no GPU data: NVML unavailable");
                Self {
                    unavailable_reason: Some(host_only.reason().to_owned()),
                    source: Arc::new(host_only),
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
}
