//! `verify-receipt` subcommand: offline verification of a receipt file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitsage_agent::receipt_check::{check_receipt, parse_receipt_file};
use bitsage_core::crypto::PublicKey;
use bitsage_core::deployment::DeploymentInfo;

/// Arguments of `bitsage-agent verify-receipt`. One trust anchor is required: a receipt's
/// own keys prove nothing (anyone can sign a receipt with two fresh keys).
#[derive(Debug, clap::Args)]
pub struct VerifyReceiptArgs {
    /// A receipt as served by `GET /api/receipts/{id}`, optionally with an `"envelope"` field
    /// holding the proof envelope.
    pub file: PathBuf,
    /// Pin the deployment key (64 hex digits), as the operator publishes it.
    #[arg(long, value_name = "HEX", value_parser = parse_key, conflicts_with = "coordinator")]
    pub coordinator_key: Option<PublicKey>,
    /// Pin the key the coordinator at URL publishes (`GET /api/coordinator`); its key id is
    /// printed: compare it with the one your operator publishes.
    #[arg(long, value_name = "URL")]
    pub coordinator: Option<String>,
}

/// What to say when no key is pinned.
pub const NO_PIN: &str = "no deployment key pinned: a receipt cannot vouch for its own keys. \
Pin one with --coordinator-key HEX (the key your operator publishes) or --coordinator URL \
(fetches GET /api/coordinator and prints its key id to compare with the published one)";

/// The pinned key and where it came from.
fn pinned_key(args: &VerifyReceiptArgs) -> anyhow::Result<(PublicKey, String)> {
    if let Some(key) = args.coordinator_key {
        return Ok((
            key,
            format!(
                "--coordinator-key (key id {})",
                bitsage_core::deployment::key_id(&key)
            ),
        ));
    }
    let Some(url) = &args.coordinator else {
        anyhow::bail!(NO_PIN);
    };
    let info: DeploymentInfo = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            bitsage_http::client::CoordinatorClient::new(url)?
                .with_timeout(std::time::Duration::from_secs(10))
                .coordinator_info()
                .await
        })
        .with_context(|| format!("fetching the deployment key from {url}"))?;
    info.check()
        .with_context(|| format!("the deployment key {url} publishes"))?;
    Ok((
        info.public_key,
        format!(
            "{url} (key id {}, network {}) — compare the key id with the one your operator publishes",
            info.key_id, info.network
        ),
    ))
}

fn parse_key(s: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(s.trim()).map_err(|e| e.to_string())
}

/// Runs `verify-receipt`: exit 0 when valid, 1 when not (with the reason).
pub fn verify_receipt(args: VerifyReceiptArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let (pinned, source) = pinned_key(&args)?;
    let checked = parse_receipt_file(&bytes).and_then(|file| check_receipt(&file, &pinned));
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
    println!("coordinator  {} (pinned from {source})", b.coordinator_key);
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
