//! `run` subcommand: joins a coordinator and works until Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bitsage_agent::config_file::{
    parse_coordinator, parse_energy_tag, parse_label, parse_node_id, parse_region, parse_runtime,
    parse_wallet,
};
use bitsage_agent::{Agent, AgentFile, EnrolmentToken, RunSettings, WalletSigner};
use bitsage_core::{NodeId, WalletAddress};
use bitsage_prover::StwoProver;

/// Arguments of `bitsage-agent run`. Each setting can also come from the configuration file
/// (`--config`); a flag or environment variable overrides the file's value.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The configuration file (`agent.yaml`, see `bitsage-agent init`). Not read unless
    /// given.
    #[arg(long, env = "BITSAGE_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration, print the effective settings (the enrolment token
    /// redacted) and exit without connecting.
    #[arg(long)]
    check: bool,
    /// The coordinator's base URL (plain HTTP), e.g. `http://127.0.0.1:8080`. Several
    /// coordinators of one deployment (comma-separated or the flag repeated) are used in
    /// order, failing over when one cannot be reached. Required here or in the file.
    #[arg(long, env = "BITSAGE_COORDINATOR", value_delimiter = ',', value_parser = parse_coordinator)]
    coordinator: Vec<String>,
    /// The Starknet wallet address the node earns for (`0x…`). Required here or in the file.
    #[arg(long, env = "BITSAGE_WALLET", value_parser = parse_wallet)]
    wallet: Option<WalletAddress>,
    /// The node id (default: `node-` + the first 16 hex digits of the public key).
    #[arg(long, value_parser = parse_node_id)]
    node_id: Option<NodeId>,
    /// The node key file, created (mode 0600) if missing
    /// (default: `<data dir>/node.key`, else `~/.bitsage/node.key`).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The data directory, home of the default key file.
    #[arg(long, env = "BITSAGE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How long a proof in progress at shutdown may take to finish and be handed in, seconds
    /// [default: 30].
    #[arg(long)]
    shutdown_grace_secs: Option<u64>,
    /// The longest wait between reconnection attempts, seconds [default: 30].
    #[arg(long)]
    max_backoff_secs: Option<u64>,
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
    /// A label `key=value` (repeatable; at most 16, with the file's).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The node's energy tag (e.g. `renewable`).
    #[arg(long, env = "BITSAGE_ENERGY_TAG", value_parser = parse_energy_tag)]
    energy_tag: Option<String>,
    /// The enrolment token from the operator console, tying this node to your organisation.
    // Checked after parsing, not by clap, so that a malformed token is not echoed.
    #[arg(
        long,
        env = "BITSAGE_ENROLMENT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    enrolment_token: Option<String>,
}

impl RunArgs {
    /// The flags and environment variables as a layer over the file.
    fn layer(&self) -> anyhow::Result<AgentFile> {
        let mut layer = AgentFile::default();
        layer.coordinators = self.coordinator.clone();
        layer.wallet = self.wallet;
        layer.node_id = self.node_id.clone();
        layer.key_file = self.key_file.clone();
        layer.data_dir = self.data_dir.clone();
        layer.region = self.region.clone();
        layer.runtime = self.runtime;
        layer.labels = self.labels.iter().cloned().collect();
        layer.energy_tag = self.energy_tag.clone();
        layer.enrolment_token = self
            .enrolment_token
            .as_deref()
            .map(EnrolmentToken::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--enrolment-token (BITSAGE_ENROLMENT_TOKEN): {e}"))?;
        layer.wallet_key = self.wallet_key.clone();
        layer.wallet_proof = self.wallet_proof.clone();
        layer.shutdown_grace_secs = self.shutdown_grace_secs;
        layer.max_backoff_secs = self.max_backoff_secs;
        Ok(layer)
    }
}

/// Loads the wallet key or proof the settings name.
fn wallet_signer(settings: &RunSettings) -> anyhow::Result<WalletSigner> {
    Ok(match (&settings.wallet_key, &settings.wallet_proof) {
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
    })
}

/// Runs `run`.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => AgentFile::load(path)?,
        None => AgentFile::default(),
    };
    let settings = file.overridden_by(args.layer()?).resolve()?;
    let wallet_signer = wallet_signer(&settings)?;
    if args.check {
        print!("{}", settings.to_check_yaml(args.config.as_deref()));
        return Ok(ExitCode::SUCCESS);
    }
    let config = settings.agent_config(wallet_signer);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
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
