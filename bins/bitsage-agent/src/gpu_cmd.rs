//! `gpu` subcommand: this host's GPU inventory, one sample and the host section, read with
//! [`bitsage_gpu::LocalGpu`] (NVML, or host-only with NVML's reason). A GPU-less host is not
//! an error: the command exits 0 and says why there is no GPU data.

use std::process::ExitCode;

use anyhow::Context;
use bitsage_gpu::{GpuReport, LocalGpu, ATTESTATION_NONCE_LEN};

/// Arguments of `bitsage-agent gpu`.
#[derive(Debug, clap::Args)]
pub(crate) struct GpuArgs {
    /// Print JSON (the report the agent sends, and the format GPU fixtures replay).
    #[arg(long)]
    json: bool,
    /// Also ask each GPU for a confidential-compute attestation report over this nonce
    /// (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
    attest_nonce: Option<[u8; ATTESTATION_NONCE_LEN]>,
}

/// Runs `gpu`.
pub(crate) fn gpu(args: GpuArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: GpuArgs) -> anyhow::Result<ExitCode> {
    let local = LocalGpu::detect().await;
    let mut report = GpuReport::collect(local.source().as_ref()).await;
    if let Some(nonce) = args.attest_nonce {
        report.attestation = Some(local.source().attest(nonce).await);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_nonce(s: &str) -> Result<[u8; ATTESTATION_NONCE_LEN], String> {
    let s = s.trim();
    if s.len() != ATTESTATION_NONCE_LEN * 2 || !s.is_ascii() {
        return Err(format!("expected {} hex digits", ATTESTATION_NONCE_LEN * 2));
    }
    let mut out = [0u8; ATTESTATION_NONCE_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| format!("not hex: {s}"))?;
    }
    Ok(out)
}
