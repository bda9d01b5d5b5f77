//! `wallet` subcommand: prove the node's wallet with the wallet account's signature —
//! `sign` with a Stark private-key file, or `typed-data` for an external wallet to sign.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitsage_agent::wallet::{load_private_key, sign_proof, typed_data};
use bitsage_agent::{default_key_path, NodeKey};
use bitsage_core::attestation::AttestationChallenge;
use bitsage_core::deployment::DeploymentInfo;
use bitsage_core::wallet::WalletProof;
use bitsage_core::WalletAddress;
use bitsage_http::client::CoordinatorClient;

/// Arguments of `bitsage-agent wallet`.
#[derive(Debug, clap::Args)]
pub(crate) struct WalletArgs {
    #[command(subcommand)]
    command: WalletCommand,
}

/// What the proof is for: the coordinator, the node key and the wallet.
#[derive(Debug, clap::Args)]
struct Target {
    /// The coordinator's base URL (it issues the nonce and names the chain).
    #[arg(long, env = "BITSAGE_COORDINATOR")]
    coordinator: String,
    /// The wallet (account address, `0x…`).
    #[arg(long, env = "BITSAGE_WALLET", value_parser = parse_wallet)]
    wallet: WalletAddress,
    /// The node key file the agent runs with (default as for `run`).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum WalletCommand {
    /// Sign a wallet proof with a Stark private-key file and write it (for `run
    /// --wallet-proof`; `run --wallet-key` does this itself at every registration).
    Sign {
        #[command(flatten)]
        target: Target,
        /// The wallet account's owner key (a file of mode 0600 holding `0x…`).
        #[arg(long, value_name = "FILE")]
        wallet_key: PathBuf,
        /// Where to write the proof (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the SNIP-12 typed data an external wallet signs, and write a proof file with
    /// the challenge and an empty `signature` to fill in with the wallet's signature.
    TypedData {
        #[command(flatten)]
        target: Target,
        /// Where to write the proof template (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn parse_wallet(s: &str) -> Result<WalletAddress, String> {
    WalletAddress::parse(s).map_err(|e| e.to_string())
}

/// The coordinator's identity, a fresh challenge for the node key, and the chain id.
fn fetch(target: &Target) -> anyhow::Result<(DeploymentInfo, AttestationChallenge, String)> {
    let key_file = match &target.key_file {
        Some(p) => p.clone(),
        None => default_key_path().context("no --key-file given and no default location")?,
    };
    let key = NodeKey::load(&key_file)
        .with_context(|| format!("loading the node key {}", key_file.display()))?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let client = CoordinatorClient::new(&target.coordinator)?;
            let info = client.coordinator_info().await?;
            let challenge = client.attestation_challenge(key.public_key()).await?;
            Ok::<_, bitsage_http::client::ClientError>((info, challenge))
        })
        .map(|(info, challenge)| {
            let chain = info.wallet_chain_id.clone();
            (info, challenge, chain)
        })
        .with_context(|| format!("asking {} for a challenge", target.coordinator))
        .and_then(|(info, challenge, chain)| match chain {
            Some(chain) => Ok((info, challenge, chain)),
            None => anyhow::bail!(
                "{} checks no wallets (it has no chain): nodes register there unverified",
                target.coordinator
            ),
        })
}

fn write_json(path: &PathBuf, value: &impl serde::Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `wallet`.
pub(crate) fn wallet(args: WalletArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        WalletCommand::Sign {
            target,
            wallet_key,
            out,
        } => {
            let key = load_private_key(&wallet_key)?;
            let (info, challenge, chain) = fetch(&target)?;
            let proof = sign_proof(&key, target.wallet, &challenge, &info.network, &chain)?;
            write_json(&out, &proof)?;
            eprintln!(
                "wrote {} (network {}, chain {chain}); valid until {}",
                out.display(),
                info.network,
                challenge.expires_at.to_rfc3339()
            );
        }
        WalletCommand::TypedData { target, out } => {
            let (info, challenge, chain) = fetch(&target)?;
            let doc = typed_data(target.wallet, &challenge, &info.network, &chain)?;
            write_json(
                &out,
                &WalletProof {
                    challenge: challenge.clone(),
                    signature: Vec::new(),
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            eprintln!(
                "sign the typed data above with wallet {} (SNIP-12), put the signature's \
                 elements (\"0x…\") in \"signature\" of {}, then run the agent with \
                 --wallet-proof {} before {}",
                target.wallet,
                out.display(),
                out.display(),
                challenge.expires_at.to_rfc3339()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
