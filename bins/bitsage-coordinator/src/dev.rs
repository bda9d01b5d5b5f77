//! `bitsage-coordinator dev`: a one-machine network with one command.
//!
//! Starts the coordinator on SQLite in the data directory, an in-process agent for this host
//! (its own node key in the data directory, the host's real GPUs through NVML or, without
//! them, the host section with NVML's reason), and a **demo job feeder** that submits a
//! Poseidon2-chain job through the public API whenever the queue runs low. Everything the
//! dashboard then shows comes from that run: the node's probe, its proofs (verified by the
//! coordinator), receipts and ledger credits. The feeder's payments are what the demo client
//! declares; nothing else is made up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitsage_agent::agent::{Agent, AgentConfig};
use bitsage_agent::WalletSigner;
use bitsage_core::job::JobFilter;
use bitsage_core::page::PageRequest;
use bitsage_core::{JobKind, JobStatus, TokenAmount, WalletAddress};
use bitsage_http::client::CoordinatorClient;
use bitsage_prover::StwoProver;
use rand::Rng;
use tokio::sync::watch;

#[cfg(feature = "devnet")]
use crate::chain::ChainConfig;
use crate::{serve, CoordinatorConfig, RunningCoordinator};
#[cfg(feature = "devnet")]
use bitsage_chain::devnet::{deploy_contracts, Devnet};
use starknet::core::types::Felt;

/// The local chain `dev` runs: a starknet-devnet process (feature `devnet`).
#[cfg(feature = "devnet")]
type LocalChain = Devnet;

/// Without the `devnet` feature there is never a local chain.
#[cfg(not(feature = "devnet"))]
enum LocalChain {}

#[cfg(not(feature = "devnet"))]
impl LocalChain {
    fn rpc_url(&self) -> &str {
        match *self {}
    }
}

/// The wallet the local agent earns for unless `--wallet` says otherwise (the bytes of
/// "bitsage dev" as a Starknet address). It is a label for the demo ledger, not a funded
/// account.
pub const DEV_WALLET: &str = "0x62697473616765206465760";

/// What the demo feeder pays per job: 1 SAGE (10^18 base units).
pub const DEMO_PAYMENT: u128 = 1_000_000_000_000_000_000;

/// Queued jobs the feeder keeps waiting at most.
pub const DEMO_QUEUE_DEPTH: u64 = 2;

/// The demo client's account without a devnet (the bytes of "bitsage dev-client").
pub const DEMO_PAYER: &str = "0x62697473616765206465762d636c69656e74";

/// Local credit the demo client gets at every start, whole SAGE.
pub const DEMO_CREDIT_SAGE: u128 = 1_000_000;

/// The account that pays for the demo jobs and its Stark key.
#[derive(Clone)]
struct DemoPayer {
    account: WalletAddress,
    key: Felt,
}

/// Settings of `dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The coordinator (its store is SQLite in its data directory).
    pub coordinator: CoordinatorConfig,
    /// The wallet the local agent earns for.
    pub wallet: WalletAddress,
    /// How often the feeder looks at the queue.
    pub feed_every: Duration,
    /// Chain length of the demo jobs.
    pub chain_length: u32,
}

/// Runs the dev network until `stop` turns true, then shuts everything down gracefully
/// (the agent finishes or gives back its lease first).
pub async fn run(options: DevOptions, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut options = options;
    let mut wallet_signer = WalletSigner::None;
    // The demo client: a fresh key for a local account, or a predeployed devnet account.
    let mut payer = DemoPayer {
        account: WalletAddress::parse(DEMO_PAYER).context("demo payer")?,
        key: starknet_key(),
    };
    // A real local chain when starknet-devnet is installed; otherwise the chain fields say
    // `unavailable` with the reason (never a number).
    std::fs::create_dir_all(&options.coordinator.data_dir)
        .with_context(|| format!("creating {}", options.coordinator.data_dir.display()))?;
    let devnet = start_local_chain(&mut options, &mut wallet_signer, &mut payer).await?;
    // The admin exists before the API listens, so a login right after start works.
    let admin = dev_admin(&options.coordinator).await?;
    let running = serve(options.coordinator.clone()).await?;
    // The demo client's local credit (and, without a chain, the key its submissions are
    // checked with): the same as `bitsage-coordinator credit set`.
    let public = starknet::signers::SigningKey::from_secret_scalar(payer.key)
        .verifying_key()
        .scalar();
    running
        .state
        .store
        .set_payer(
            &payer.account,
            Some(&bitsage_chain::snip12::hex_of_felt(&public)),
            TokenAmount::from_u128(DEMO_CREDIT_SAGE * 1_000_000_000_000_000_000),
            bitsage_core::time::now(),
        )
        .await
        .context("funding the demo client")?;
    let url = running.url();
    let feeder_key = feeder_key(&running, &admin.0).await?;
    print_banner(&url, &options, devnet.as_ref());
    println!(
        "  admin         {} / password in {}  (POST {url}/api/auth/login)",
        admin.0.username,
        admin.1.display()
    );

    let (agent_stop_tx, agent_stop) = watch::channel(false);
    let gpu = bitsage_gpu::LocalGpu::detect().await;
    let mut agent_config = AgentConfig::new(
        url.clone(),
        options.wallet,
        options.coordinator.data_dir.join("node.key"),
    );
    // With a devnet the agent proves its wallet with the predeployed account's key.
    agent_config.wallet_signer = wallet_signer;
    let agent = Agent::new(agent_config, Arc::new(StwoProver::new()), gpu.source())
        .context("building the in-process agent")?;
    let agent_task = tokio::spawn(agent.run(agent_stop));

    let feeder = tokio::spawn(feed(
        url.clone(),
        feeder_key.secret.clone(),
        payer,
        running.state.store.clone(),
        options.feed_every,
        options.chain_length,
        stop.clone(),
    ));
    let reporter = tokio::spawn(report(running.state.store.clone(), stop.clone()));

    let mut stop = stop;
    let _ = stop.wait_for(|s| *s).await;
    let _ = agent_stop_tx.send(true);
    match agent_task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "agent stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "agent task failed"),
    }
    let _ = feeder.await;
    let _ = reporter.await;
    // The feeder's key lives as long as this run.
    if let Err(e) = running
        .state
        .accounts
        .store()
        .revoke_api_key(&feeder_key.key.id, bitsage_core::time::now())
        .await
    {
        tracing::warn!(error = %e, "could not revoke the demo feeder's key");
    }
    let result = shutdown(running).await;
    drop(devnet);
    result
}

/// The dev network's admin: created on the first run with a random password written to
/// `<data dir>/dev-admin.txt` (mode 0600); later runs keep it.
async fn dev_admin(
    config: &CoordinatorConfig,
) -> anyhow::Result<(bitsage_core::access::User, std::path::PathBuf)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let path = config.data_dir.join("dev-admin.txt");
    let store = crate::open_store(config).await?;
    if let Some(existing) = store.user_by_name(DEV_ADMIN).await? {
        return Ok((existing.user, path));
    }
    // An unattended run may set the password; otherwise a random one, written down.
    let given = std::env::var("BITSAGE_ADMIN_PASSWORD").ok();
    let password = given.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 12];
        rand::thread_rng().fill(&mut bytes);
        hex::encode(bytes)
    });
    let user = bitsage_core::service::accounts::bootstrap_admin(
        store.as_ref(),
        store.as_ref(),
        DEV_ADMIN,
        &password,
        bitsage_core::time::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the dev admin: {e}"))?;
    let written = match given {
        Some(_) => "(from BITSAGE_ADMIN_PASSWORD)".to_string(),
        None => password,
    };
    write_private(
        &path,
        &format!("username {DEV_ADMIN}\npassword {written}\n"),
    )?;
    Ok((user, path))
}

/// The dev admin's username.
const DEV_ADMIN: &str = "admin";

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// An API key for the demo feeder (job submission and reads), created by the dev admin.
async fn feeder_key(
    running: &RunningCoordinator,
    admin: &bitsage_core::access::User,
) -> anyhow::Result<bitsage_core::service::accounts::CreatedKey> {
    use bitsage_core::access::Scope;
    use bitsage_core::service::accounts::{Actor, NewKeyInput, Principal};
    let by = Principal {
        actor: Actor::User {
            id: admin.id,
            username: admin.username.clone(),
        },
        role: admin.role,
        org: admin.org,
        scopes: None,
    };
    running
        .state
        .accounts
        .create_key(
            &by,
            NewKeyInput {
                name: "dev demo feeder".into(),
                role: Some(bitsage_core::access::Role::Viewer),
                scopes: vec![Scope::JobsSubmit, Scope::JobsRead],
                expires_at: None,
                org: None,
            },
            bitsage_core::time::now(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo feeder's key: {e}"))
}

async fn shutdown(running: RunningCoordinator) -> anyhow::Result<()> {
    running.shutdown().await?;
    println!("dev network stopped");
    Ok(())
}

/// A real local chain when starknet-devnet is installed: the coordinator reads it, the agent's
/// wallet is a predeployed account, the demo client pays from the escrow. Otherwise the chain
/// fields say `unavailable` with the reason (never a number).
#[cfg(feature = "devnet")]
async fn start_local_chain(
    options: &mut DevOptions,
    wallet_signer: &mut WalletSigner,
    payer: &mut DemoPayer,
) -> anyhow::Result<Option<LocalChain>> {
    if Devnet::binary().is_none() {
        println!("chain: no starknet-devnet found (scripts/install-devnet.sh installs it); stake, rewards and reputation will say unavailable");
        return Ok(None);
    }
    let key = crate::load_deployment_key(
        &options.coordinator.deployment_key,
        &options.coordinator.data_dir,
        &options.coordinator.network,
    )?
    .public_key();
    match start_chain(key).await {
        Ok((devnet, chain, wallet, wallet_key, client)) => {
            options.coordinator.chain = Some(chain);
            options.wallet = wallet;
            *wallet_signer = WalletSigner::Key(wallet_key);
            *payer = client;
            Ok(Some(devnet))
        }
        Err(e) => {
            println!("chain: starknet-devnet failed to start or deploy ({e:#}); stake, rewards and reputation will say unavailable");
            Ok(None)
        }
    }
}

/// This build has no devnet harness (the production build): no local chain.
#[cfg(not(feature = "devnet"))]
async fn start_local_chain(
    _options: &mut DevOptions,
    _wallet_signer: &mut WalletSigner,
    _payer: &mut DemoPayer,
) -> anyhow::Result<Option<LocalChain>> {
    println!("chain: this build has no devnet harness (build with `--features devnet`); stake, rewards and reputation will say unavailable");
    Ok(None)
}

/// Starts a devnet, deploys our contracts, and stakes for predeployed account 1, which becomes
/// the local agent's wallet.
#[cfg(feature = "devnet")]
async fn start_chain(
    deployment_key: bitsage_core::crypto::PublicKey,
) -> anyhow::Result<(Devnet, ChainConfig, WalletAddress, Felt, DemoPayer)> {
    let devnet = Devnet::start().await?;
    let deployment = deploy_contracts(&devnet).await?;
    let accounts = devnet.predeployed_accounts().await?;
    let worker = accounts
        .get(1)
        .context("devnet has no second predeployed account")?
        .clone();
    let sage = |n: u128| TokenAmount::from_u128(n * 1_000_000_000_000_000_000);
    deployment.mint_sage(worker.address, sage(10_000)).await?;
    deployment
        .stake(&worker, sage(1_000), bitsage_core::gpu::GpuTier::DataCenter)
        .await?;
    let client = accounts
        .get(2)
        .context("devnet has no third predeployed account")?;
    // The demo client funds its jobs in the escrow; account 0 settles epochs; the escrow
    // publishes the deployment key receipts are countersigned with.
    deployment.mint_sage(client.address, sage(10_000)).await?;
    deployment.deposit(client, sage(10_000)).await?;
    deployment.set_deployment_key(&deployment_key).await?;
    let chain = ChainConfig {
        rpc_url: devnet.rpc_url().to_string(),
        contracts: deployment.contract_addresses(),
        start_block: 0,
        escrow: Some(deployment.escrow_address()?),
        settler: Some(crate::chain::Settler {
            address: deployment.owner.wallet,
            key: deployment.owner.private_key,
        }),
    };
    let payer = DemoPayer {
        account: client.wallet,
        key: client.private_key,
    };
    Ok((devnet, chain, worker.wallet, worker.private_key, payer))
}

fn print_banner(url: &str, options: &DevOptions, devnet: Option<&LocalChain>) {
    println!("BitSage dev network");
    println!(
        "  coordinator   {url}  (SQLite in {})",
        options.coordinator.data_dir.display()
    );
    match (devnet, &options.coordinator.chain) {
        (Some(d), Some(c)) => {
            println!(
                "  chain         starknet-devnet {} (contracts deployed; 1,000 SAGE staked for the wallet)",
                d.rpc_url()
            );
            println!(
                "  contracts     token {}  staking {}  reputation {}",
                c.contracts.token, c.contracts.staking, c.contracts.reputation
            );
        }
        _ => println!("  chain         none (stake, rewards, reputation: unavailable)"),
    }
    println!("  wallet        {}", options.wallet);
    println!("  console       {url}/  (log in as the admin below)");
    println!("  nodes         {url}/api/nodes");
    println!("  jobs          {url}/api/jobs/recent");
    println!("  receipts      {url}/api/receipts");
    println!(
        "  dashboard     {url}/api/summary  (X-Wallet-Address: {} for /api/validator/*)",
        options.wallet
    );
    println!("  contracts     {url}/api/contracts");
    println!("  API document  {url}/openapi.json");
    println!("Ctrl-C stops it.");
}

/// The demo client: keeps up to [`DEMO_QUEUE_DEPTH`] jobs queued, submitting through the
/// public API like any client would.
async fn feed(
    url: String,
    key: String,
    payer: DemoPayer,
    store: bitsage_core::DynJobStore,
    every: Duration,
    chain_length: u32,
    mut stop: watch::Receiver<bool>,
) {
    let client = match CoordinatorClient::new(&url) {
        Ok(c) => c.with_bearer_token(key),
        Err(e) => {
            tracing::error!(error = %e, "demo feeder cannot build its client");
            return;
        }
    };
    let queued = JobFilter {
        status: Some(JobStatus::Queued),
        node: None,
    };
    loop {
        match store.count_jobs(&queued).await {
            Ok(queued) if queued < DEMO_QUEUE_DEPTH => {
                let signed = match client.coordinator_info().await {
                    Ok(info) => bitsage_chain::snip12::signed_submission(
                        &payer.key,
                        payer.account,
                        JobKind::Poseidon2Chain {
                            seed: rand::thread_rng().gen(),
                            length: chain_length,
                        },
                        TokenAmount::from_u128(DEMO_PAYMENT),
                        Some(3),
                        &info.network,
                        info.payment_chain_id.as_deref().unwrap_or_default(),
                    )
                    .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let req = match signed {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "demo job cannot be signed");
                        continue;
                    }
                };
                match client.submit_job(&req).await {
                    Ok(job) => {
                        tracing::info!(job = %job.id, length = chain_length, "demo job submitted")
                    }
                    Err(e) => tracing::warn!(error = %e, "demo job submission failed"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "demo feeder cannot read the queue"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Prints a progress line every 10 s: nodes by status, jobs completed, receipts.
async fn report(store: bitsage_core::DynJobStore, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let one = PageRequest {
            limit: 1,
            offset: 0,
        };
        let completed = JobFilter {
            status: Some(JobStatus::Completed),
            node: None,
        };
        let active = bitsage_core::node::NodeFilter::status(bitsage_core::NodeStatus::Active);
        let all_receipts = bitsage_core::receipt::ReceiptFilter::default();
        let (jobs, nodes, receipts) = tokio::join!(
            store.count_jobs(&completed),
            store.count_nodes(&active),
            store.list_receipts(&all_receipts, one),
        );
        match (jobs, nodes, receipts) {
            (Ok(j), Ok(n), Ok(r)) => println!(
                "[dev] active nodes: {}  jobs proven and verified: {}  receipts: {}",
                n, j, r.total
            ),
            _ => tracing::warn!("progress report: store query failed"),
        }
    }
}

/// A fresh random Stark private key (below the curve order).
fn starknet_key() -> Felt {
    let mut bytes: [u8; 32] = rand::random();
    // Clearing the top 5 bits keeps it below 2^251, under the curve order.
    bytes[0] &= 0x07;
    bytes[31] |= 1;
    Felt::from_bytes_be(&bytes)
}
