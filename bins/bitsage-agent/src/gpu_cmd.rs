//! `gpu` subcommand (filled in by the GPU work).

use std::process::ExitCode;

/// Arguments of `bitsage-agent gpu`.
#[derive(Debug, clap::Args)]
pub struct GpuArgs {}

/// Runs `gpu`.
pub fn gpu(_args: GpuArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("GPU reporting is not built yet")
}
