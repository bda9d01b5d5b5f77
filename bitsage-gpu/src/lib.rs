#![doc = include_str!("../README.md")]

#[cfg(feature = "nvml")]
mod attestation;
#[cfg(feature = "test-utils")]
mod fixture;
mod host;
mod local;
#[cfg(feature = "nvml")]
mod nvml;
pub mod prometheus;
mod report;
mod sampler;
#[cfg(feature = "nvml")]
mod xid;

pub use bitsage_core::attestation::{
    Attestation, DeviceAttestation, HostAttestation, ATTESTATION_NONCE_LEN,
};
pub use bitsage_core::gpu::classify_tier;
#[cfg(feature = "test-utils")]
pub use fixture::{FixtureGpuSource, SYNTHETIC_2XH100};
pub use host::{HostOnlySource, HostSource};
pub use local::LocalGpu;
#[cfg(feature = "nvml")]
pub use nvml::NvmlGpuSource;
pub use report::{GpuReport, GpuStatus};
pub use sampler::{GpuSampler, SamplerConfig, SamplerSnapshot};
