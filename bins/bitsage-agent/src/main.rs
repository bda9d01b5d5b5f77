//! `bitsage-agent`: the worker binary. Thin: argument parsing and dispatch; the logic lives in
//! the library crates.

mod gpu_cmd;
mod prove_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The BitSage worker agent.
#[derive(Debug, Parser)]
#[command(name = "bitsage-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prove a job locally and write the proof envelope to a file.
    Prove(prove_cmd::ProveArgs),
    /// Verify a proof envelope file (exit 0 valid, non-zero invalid).
    Verify(prove_cmd::VerifyArgs),
    /// Print this host's GPU inventory, a sample and the host section.
    Gpu(gpu_cmd::GpuArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prove(args) => prove_cmd::prove(args),
        Command::Verify(args) => prove_cmd::verify(args),
        Command::Gpu(args) => gpu_cmd::gpu(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
