//! `run` subcommand: joins a coordinator and works until Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bitsage_agent::{default_key_path, Agent, AgentConfig, KeySource, WalletSigner};
use bitsage_core::{NodeId, WalletAddress};
use bitsage_prover::StwoProver;

/// Arguments of `bitsage-agent run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The coordinator's base URL (plain HTTP), e.g. `http://127.0.0.1:8080`. Several
    /// coordinators of one deployment (comma-separated or the flag repeated) are used in
    /// order, failing over when one cannot be reached.
    #[arg(
        long,
        env = "BITSAGE_COORDINATOR",
        value_delimiter = ',',
        required = true
    )]
    coordinator: Vec<String>,
    /// The Starknet wallet address the node earns for (`0x…`).
    #[arg(long, env = "BITSAGE_WALLET", value_parser = parse_wallet)]
    wallet: WalletAddress,
    /// The node id (default: `node-` + the first 16 hex digits of the public key).
    #[arg(long, value_parser = parse_node_id)]
    node_id: Option<NodeId>,
    /// The node key file, created (mode 0600) if missing
    /// (default: `$BITSAGE_DATA_DIR/node.key`, else `~/.bitsage/node.key`).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// How long a proof in progress at shutdown may take to finish and be handed in, seconds.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_secs: u64,
    /// The longest wait between reconnection attempts, seconds.
    #[arg(long, default_value_t = 30)]
    max_backoff_secs: u64,
    /// Prove the wallet at registration with this Stark private key (the wallet account's
    /// owner key; a file of mode 0600 holding `0x…`). Needed by a coordinator with a chain.
    #[arg(long, value_name = "FILE", conflicts_with = "wallet_proof")]
    wallet_key: Option<PathBuf>,
    /// Prove the wallet with a proof made beforehand by an external wallet
    /// (`bitsage-agent wallet typed-data`, then add the signature); valid until its
    /// challenge expires.
    #[arg(long, value_name = "FILE")]
    wallet_proof: Option<PathBuf>,
    /// The region this node is placed in, shown to operators and filterable (e.g. `eu-west`).
    #[arg(long, env = "BITSAGE_REGION", value_parser = parse_region)]
    region: Option<String>,
    /// The serving runtime: native, ollama, vllm, tensorrtllm or tgi.
    #[arg(long, env = "BITSAGE_RUNTIME", value_parser = parse_runtime)]
    runtime: Option<bitsage_core::node::Runtime>,
    /// A label `key=value` (repeatable; at most 16).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The node's energy tag (e.g. `renewable`).
    #[arg(long, env = "BITSAGE_ENERGY_TAG", value_parser = parse_energy_tag)]
    energy_tag: Option<String>,
}

fn parse_region(s: &str) -> Result<String, String> {
    bitsage_core::node::check_region(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn parse_energy_tag(s: &str) -> Result<String, String> {
    bitsage_core::node::check_energy_tag(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn parse_runtime(s: &str) -> Result<bitsage_core::node::Runtime, String> {
    bitsage_core::node::Runtime::parse(s).map_err(|e| e.to_string())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("a label is `key=value`")?;
    bitsage_core::node::check_label_key(k).map_err(|e| e.to_string())?;
    Ok((k.to_string(), v.to_string()))
}

fn parse_wallet(s: &str) -> Result<WalletAddress, String> {
    WalletAddress::parse(s).map_err(|e| e.to_string())
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::parse(s).map_err(|e| e.to_string())
}

/// Runs `run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let key_file = match args.key_file {
        Some(p) => p,
        None => default_key_path()
            .context("no --key-file given and neither BITSAGE_DATA_DIR nor HOME is set")?,
    };
    let wallet_signer = match (&args.wallet_key, &args.wallet_proof) {
        (Some(path), _) => WalletSigner::Key(bitsage_agent::wallet::load_private_key(path)?),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let proof: bitsage_core::wallet::WalletProof = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a wallet proof", path.display()))?;
            proof
                .validate()
                .with_context(|| format!("the wallet proof in {}", path.display()))?;
            WalletSigner::Prepared(Box::new(proof))
        }
        (None, None) => WalletSigner::None,
    };
    let profile = (args.region.is_some()
        || args.runtime.is_some()
        || !args.labels.is_empty()
        || args.energy_tag.is_some())
    .then(|| bitsage_core::node::NodeProfile {
        region: args.region.clone(),
        runtime: args.runtime.unwrap_or_default(),
        labels: args.labels.iter().cloned().collect(),
        energy_tag: args.energy_tag.clone(),
    });
    if let Some(p) = &profile {
        p.validate()
            .context("the node profile (--region, --runtime, --label, --energy-tag)")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut urls = args.coordinator.into_iter();
        let first = urls.next().context("--coordinator is required")?;
        let mut config = AgentConfig::new(first, args.wallet, KeySource::File(key_file));
        config.failover_urls = urls.collect();
        config.node_id = args.node_id;
        config.shutdown_grace = std::time::Duration::from_secs(args.shutdown_grace_secs);
        config.max_backoff = std::time::Duration::from_secs(args.max_backoff_secs.max(1));
        config.wallet_signer = wallet_signer;
        config.profile = profile;
        let gpu = bitsage_gpu::LocalGpu::detect().await.source();
        let agent = Agent::new(config, Arc::new(StwoProver::new()), gpu)?;
        tracing::info!(node = %agent.node_id(), public_key = %agent.public_key(), "node identity");
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; finishing current work");
            stop.send_replace(true);
            // A second signal while shutting down exits at once.
            wait_for_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
        let report = agent.run(shutdown).await?;
        println!("{}", serde_json::to_string(&report.stats)?);
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
