//! [`LocalGpu`]: what an agent reads its own hardware with.

use std::sync::Arc;

use bitsage_core::{DynGpuSource, Error, Result};

use crate::host::HostOnlySource;
#[cfg(feature = "nvml")]
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
    #[cfg(feature = "nvml")]
    pub async fn detect() -> Self {
        match tokio::task::spawn_blocking(NvmlGpuSource::new).await {
            Ok(result) => Self::from_result(result),
            Err(e) => Self::from_result::<NvmlGpuSource>(Err(Error::backend("nvml", e))),
        }
    }

    /// [`LocalGpu::detect`] for synchronous callers (blocks while NVML initialises).
    #[cfg(feature = "nvml")]
    pub fn detect_blocking() -> Self {
        Self::from_result(NvmlGpuSource::new())
    }

    /// Without the `nvml` feature: the host only, with that reason.
    #[cfg(not(feature = "nvml"))]
    pub async fn detect() -> Self {
        Self::detect_blocking()
    }

    /// Without the `nvml` feature: the host only, with that reason.
    #[cfg(not(feature = "nvml"))]
    pub fn detect_blocking() -> Self {
        Self::from_result(Err::<HostOnlySource, _>(Error::Unavailable {
            source_name: "nvml".into(),
            reason: "this build has no NVML support (bitsage-gpu feature `nvml`)".into(),
        }))
    }

    fn from_result<S: bitsage_core::GpuSource + 'static>(result: Result<S>) -> Self {
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
