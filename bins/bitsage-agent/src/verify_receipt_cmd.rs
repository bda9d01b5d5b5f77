//! `verify-receipt` subcommand: offline verification of a receipt file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitsage_agent::receipt_check::{check_receipt, parse_receipt_file, ReceiptFile};
use bitsage_core::crypto::PublicKey;
use bitsage_core::deployment::DeploymentInfo;

/// Arguments of `bitsage-agent verify-receipt`. One trust anchor is required: a receipt's
/// own keys prove nothing (anyone can sign a receipt with two fresh keys).
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyReceiptArgs {
    /// A receipt as served by `GET /api/receipts/{id}`, optionally with an `"envelope"` field
    /// holding the proof envelope.
    pub file: PathBuf,
    /// Pin the deployment key (64 hex digits), as the operator publishes it.
    #[arg(long, value_name = "HEX", value_parser = parse_key, conflicts_with = "coordinator")]
    pub coordinator_key: Option<PublicKey>,
    /// Pin the key the coordinator at URL publishes (`GET /api/coordinator`); its key id is
    /// printed: compare it with the one your operator publishes.
    #[arg(long, value_name = "URL", conflicts_with = "rpc")]
    pub coordinator: Option<String>,
    /// Read the deployment key the `JobEscrow` contract publishes over this Starknet JSON-RPC
    /// endpoint, and check the receipt's inclusion in the epoch root anchored there.
    #[arg(
        long,
        value_name = "URL",
        requires = "escrow",
        conflicts_with = "coordinator_key"
    )]
    pub rpc: Option<String>,
    /// The `JobEscrow` contract (with `--rpc`).
    #[arg(long, value_name = "ADDRESS", requires = "rpc")]
    pub escrow: Option<String>,
}

/// What to say when no key is pinned.
pub(crate) const NO_PIN: &str =
    "no deployment key pinned: a receipt cannot vouch for its own keys. \
Pin one with --coordinator-key HEX (the key your operator publishes), --coordinator URL \
(fetches GET /api/coordinator and prints its key id to compare with the published one) or \
--rpc URL --escrow ADDRESS (reads the key the deployment registered on chain)";

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
    if let (Some(rpc), Some(escrow)) = (&args.rpc, &args.escrow) {
        let key = runtime()?
            .block_on(escrow_reader(rpc, escrow)?.deployment_key())
            .with_context(|| format!("reading the deployment key from escrow {escrow}"))?;
        return Ok((
            key,
            format!(
                "the JobEscrow contract {escrow} on chain (key id {})",
                bitsage_core::deployment::key_id(&key)
            ),
        ));
    }
    let Some(url) = &args.coordinator else {
        anyhow::bail!(NO_PIN);
    };
    let info: DeploymentInfo = runtime()?
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn escrow_reader(rpc: &str, escrow: &str) -> anyhow::Result<bitsage_chain::escrow::EscrowReader> {
    let escrow = bitsage_core::WalletAddress::parse(escrow).context("--escrow")?;
    Ok(bitsage_chain::escrow::EscrowReader::new(
        rpc,
        &escrow,
        std::time::Duration::from_secs(10),
    )?)
}

/// With `--rpc`: the receipt's inclusion proof leads to the root anchored on chain for its
/// epoch. `Err(reason)` when it does not (or cannot be checked).
fn check_anchor(args: &VerifyReceiptArgs, file: &ReceiptFile) -> anyhow::Result<Option<String>> {
    let (Some(rpc), Some(escrow)) = (&args.rpc, &args.escrow) else {
        return Ok(None);
    };
    let Some(inclusion) = &file.inclusion else {
        anyhow::bail!(
            "the file has no inclusion proof: download the receipt with \
             ?with_proof=true&with_inclusion=true once its epoch is settled"
        );
    };
    let anchored = runtime()?
        .block_on(escrow_reader(rpc, escrow)?.epoch(inclusion.epoch_id))
        .context("reading the epoch from the escrow")?;
    let Some(anchored) = anchored else {
        anyhow::bail!("epoch {} is not settled on chain", inclusion.epoch_id);
    };
    inclusion
        .check(&file.receipt, &anchored.receipts_root)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(format!(
        "epoch {} (block {}, {} receipts), root {} anchored on chain",
        inclusion.epoch_id, anchored.block, anchored.jobs, anchored.receipts_root
    )))
}

/// Runs `verify-receipt`: exit 0 when valid, 1 when not (with the reason).
pub(crate) fn verify_receipt(args: VerifyReceiptArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let (pinned, source) = pinned_key(&args)?;
    let file = match parse_receipt_file(&bytes) {
        Ok(f) => f,
        Err(e) => {
            println!("INVALID: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let checked = check_receipt(&file, &pinned);
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
    match check_anchor(&args, &file) {
        Ok(Some(anchor)) => println!("anchored     {anchor}"),
        Ok(None) => {}
        Err(e) => {
            println!("INVALID: {e:#}");
            return Ok(ExitCode::from(1));
        }
    }
    println!("VALID");
    Ok(ExitCode::SUCCESS)
}
