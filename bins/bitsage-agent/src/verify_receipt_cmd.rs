//! `verify-receipt` subcommand: offline verification of a receipt file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitsage_agent::receipt_check::{check_receipt, parse_receipt_file};
use bitsage_core::crypto::PublicKey;

/// Arguments of `bitsage-agent verify-receipt`.
#[derive(Debug, clap::Args)]
pub struct VerifyReceiptArgs {
    /// A receipt as served by `GET /api/receipts/{id}`, optionally with an `"envelope"` field
    /// holding the proof envelope.
    pub file: PathBuf,
    /// Also require the receipt to be countersigned by this coordinator key (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_key)]
    pub coordinator_key: Option<PublicKey>,
}

fn parse_key(s: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(s.trim()).map_err(|e| e.to_string())
}

/// Runs `verify-receipt`: exit 0 when valid, 1 when not (with the reason).
pub fn verify_receipt(args: VerifyReceiptArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let checked = parse_receipt_file(&bytes)
        .and_then(|file| check_receipt(&file, args.coordinator_key.as_ref()));
    let check = match checked {
        Ok(c) => c,
        Err(e) => {
            println!("INVALID: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let b = &check.receipt.body;
    println!("receipt      {}", b.id);
    println!("kind         {}", b.kind);
    println!("job          {}", b.job_id);
    println!("node         {} ({})", b.node_id, b.node_key);
    println!("coordinator  {}", b.coordinator_key);
    println!("output       {}", b.output);
    println!("proof hash   {}", b.proof_hash);
    println!("payment      {} ({})", b.payment, b.payment.format_sage());
    println!("fee          {} ({})", b.fee, b.fee.format_sage());
    println!("net          {} ({})", b.net, b.net.format_sage());
    println!("completed    {}", b.completed_at.to_rfc3339());
    match &check.proof {
        Some(p) => println!("security     {} bits (proof verified)", p.security_bits),
        None => println!("security     - (no envelope: proof not checked)"),
    }
    println!("VALID");
    Ok(ExitCode::SUCCESS)
}
