//! `init` subcommand: writes an `agent.yaml` from flags, for `run --config`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bitsage_agent::config_file::{
    parse_coordinator, parse_energy_tag, parse_label, parse_node_id, parse_region, parse_runtime,
    parse_wallet,
};
use bitsage_agent::{AgentFile, EnrolmentToken};
use bitsage_core::{NodeId, WalletAddress};

/// Arguments of `bitsage-agent init`. Only flags are read (no environment variables), so
/// the file holds exactly what was typed; paths are written absolute.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The file to write (mode 0600: it may hold the enrolment token).
    #[arg(long, value_name = "FILE", default_value = "agent.yaml")]
    out: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    force: bool,
    /// The coordinator's base URL (plain HTTP); several, comma-separated or repeated, are
    /// tried in order.
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_coordinator)]
    coordinator: Vec<String>,
    /// The Starknet wallet address the node earns for (`0x…`).
    #[arg(long, required = true, value_parser = parse_wallet)]
    wallet: Option<WalletAddress>,
    /// The node id (default: derived from the node key).
    #[arg(long, value_parser = parse_node_id)]
    node_id: Option<NodeId>,
    /// The node key file (default: `<data dir>/node.key`).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The data directory, home of the default key file.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The region this node is placed in (e.g. `eu-west`).
    #[arg(long, value_parser = parse_region)]
    region: Option<String>,
    /// The serving runtime: native, ollama, vllm, tensorrtllm or tgi.
    #[arg(long, value_parser = parse_runtime)]
    runtime: Option<bitsage_core::node::Runtime>,
    /// A label `key=value` (repeatable; at most 16).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The node's energy tag (e.g. `renewable`).
    #[arg(long, value_parser = parse_energy_tag)]
    energy_tag: Option<String>,
    /// The enrolment token from the operator console.
    // Checked after parsing, not by clap, so that a malformed token is not echoed.
    #[arg(long, value_name = "TOKEN")]
    enrolment_token: Option<String>,
    /// A Stark private key file proving the wallet at registration.
    #[arg(long, value_name = "FILE", conflicts_with = "wallet_proof")]
    wallet_key: Option<PathBuf>,
    /// A wallet proof file made beforehand (`bitsage-agent wallet typed-data`).
    #[arg(long, value_name = "FILE")]
    wallet_proof: Option<PathBuf>,
    /// How long a proof in progress at shutdown may take, seconds.
    #[arg(long)]
    shutdown_grace_secs: Option<u64>,
    /// The longest wait between reconnection attempts, seconds.
    #[arg(long)]
    max_backoff_secs: Option<u64>,
}

/// `path` made absolute; refused when it is not UTF-8 (the file is text).
fn absolute(flag: &str, path: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    path.map(|p| {
        let abs = std::path::absolute(&p).with_context(|| format!("{flag} {}", p.display()))?;
        anyhow::ensure!(
            abs.to_str().is_some(),
            "{flag} {}: the path is not UTF-8",
            p.display()
        );
        Ok(abs)
    })
    .transpose()
}

/// Runs `init`.
pub(crate) fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let mut file = AgentFile::default();
    file.coordinators = args.coordinator;
    file.wallet = args.wallet;
    file.node_id = args.node_id;
    file.key_file = absolute("--key-file", args.key_file)?;
    file.data_dir = absolute("--data-dir", args.data_dir)?;
    file.region = args.region;
    file.runtime = args.runtime;
    file.labels = args.labels.into_iter().collect();
    file.energy_tag = args.energy_tag;
    file.enrolment_token = args
        .enrolment_token
        .as_deref()
        .map(EnrolmentToken::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--enrolment-token: {e}"))?;
    file.wallet_key = absolute("--wallet-key", args.wallet_key)?;
    file.wallet_proof = absolute("--wallet-proof", args.wallet_proof)?;
    file.shutdown_grace_secs = args.shutdown_grace_secs;
    file.max_backoff_secs = args.max_backoff_secs;
    // What `run` would refuse (too many labels, a bad label value) is refused now; the key
    // file's default depends on where `run` runs, so it is not looked for here.
    let mut probe = file.clone();
    probe
        .key_file
        .get_or_insert_with(|| PathBuf::from("node.key"));
    probe.resolve()?;
    file.write(&args.out, args.force)?;
    let shown = std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone());
    print_next_steps(&shown);
    Ok(ExitCode::SUCCESS)
}

fn print_next_steps(path: &Path) {
    let path = shell_quote(&path.to_string_lossy());
    println!("wrote {path} (mode 0600)");
    println!("check it:      bitsage-agent run --config {path} --check");
    println!("run it:        bitsage-agent run --config {path}");
    println!("as a service:  bitsage-agent service --systemd --config {path}");
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%=,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
