//! `bitsage-agent`: the worker binary. Thin: argument parsing, tracing and dispatch; the
//! logic lives in the `bitsage_agent` library and the other crates.

mod gpu_cmd;
mod init_cmd;
mod prove_cmd;
mod run_cmd;
mod service_cmd;
mod verify_receipt_cmd;
mod wallet_cmd;

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
    /// Join a coordinator and prove the jobs it leases (Ctrl-C / SIGTERM: graceful stop).
    Run(run_cmd::RunArgs),
    /// Write a configuration file (`agent.yaml`) for `run --config`.
    Init(init_cmd::InitArgs),
    /// Print or write a systemd unit or launchd job that runs `run --config FILE`.
    Service(service_cmd::ServiceArgs),
    /// Prove a job locally and write the proof envelope to a file.
    Prove(prove_cmd::ProveArgs),
    /// Verify a proof envelope file (exit 0 valid, non-zero invalid).
    Verify(prove_cmd::VerifyArgs),
    /// Verify a receipt file offline: signatures, and the proof when it carries the envelope
    /// (exit 0 valid, non-zero invalid).
    VerifyReceipt(verify_receipt_cmd::VerifyReceiptArgs),
    /// Print this host's GPU inventory, a sample and the host section.
    Gpu(gpu_cmd::GpuArgs),
    /// Prove the node's wallet: sign a proof with a Stark key file, or print the typed data
    /// for an external wallet.
    Wallet(wallet_cmd::WalletArgs),
}

fn main() -> ExitCode {
    // Before anything else of ours runs: a CPU without the features this build uses would
    // fail later with an illegal instruction.
    if let Err(e) = bitsage_prover::cpu::check() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    // Logs go to stderr (stdout carries command output); `RUST_LOG` overrides the level.
    let default_level = match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Init(args) => init_cmd::init(args),
        Command::Service(args) => service_cmd::service(args),
        Command::Prove(args) => prove_cmd::prove(args),
        Command::Verify(args) => prove_cmd::verify(args),
        Command::VerifyReceipt(args) => verify_receipt_cmd::verify_receipt(args),
        Command::Gpu(args) => gpu_cmd::gpu(args),
        Command::Wallet(args) => wallet_cmd::wallet(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
