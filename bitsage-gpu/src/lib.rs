//! # bitsage-gpu
//!
//! [`GpuSource`](bitsage_core::GpuSource) implementations, reporting exactly what each
//! worker's hardware says:
//!
//! - [`NvmlGpuSource`]: NVIDIA GPUs through NVML (inventory, dcgm-exporter-like samples, XID
//!   events, confidential-compute attestation). A metric a device does not support is `None`;
//!   a missing library is [`Error::Unavailable`](bitsage_core::Error::Unavailable) with the
//!   reason, never a mock GPU.
//! - [`HostSource`] (CPU, memory) and [`HostOnlySource`] for GPU-less workers;
//!   [`LocalGpu::detect`] picks between NVML and host-only for an agent.
//! - [`GpuSampler`]: samples any source in the background with a timeout and serves the
//!   latest reading (with its age and last error) from a shared cache.
//! - [`prometheus`]: renders readings as Prometheus text (a pure function).
//! - [`GpuReport`]: the `bitsage-agent gpu --json` document.
//! - `FixtureGpuSource` (feature `fixtures`, tests and demos only): replays recorded reports.
//! - [`classify_tier`]: the staking tier table (from `bitsage-core`).

mod attestation;
#[cfg(feature = "fixtures")]
mod fixture;
mod host;
mod local;
mod nvml;
pub mod prometheus;
mod report;
mod sampler;
mod xid;

pub use bitsage_core::attestation::{
    Attestation, DeviceAttestation, HostAttestation, ATTESTATION_NONCE_LEN,
};
pub use bitsage_core::gpu::classify_tier;
#[cfg(feature = "fixtures")]
pub use fixture::{FixtureGpuSource, SYNTHETIC_2XH100};
pub use host::{HostOnlySource, HostSource};
pub use local::LocalGpu;
pub use nvml::NvmlGpuSource;
pub use report::{GpuReport, GpuStatus};
pub use sampler::{GpuSampler, SamplerConfig, SamplerSnapshot};
