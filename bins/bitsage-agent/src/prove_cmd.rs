//! `prove` and `verify` subcommands (filled in by the prover work).

use std::process::ExitCode;

/// Arguments of `bitsage-agent prove`.
#[derive(Debug, clap::Args)]
pub struct ProveArgs {}

/// Arguments of `bitsage-agent verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

/// Runs `prove`.
pub fn prove(_args: ProveArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("proving is not built yet")
}

/// Runs `verify`.
pub fn verify(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("verification is not built yet")
}
