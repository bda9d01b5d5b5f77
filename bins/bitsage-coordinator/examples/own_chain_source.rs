//! Plug your own chain source into a coordinator you build as a library.
//!
//! ```text
//! cargo run -p bitsage-coordinator --example own_chain_source
//! ```
//!
//! A coordinator reads stake, rewards and reputation through the
//! [`bitsage_core::ChainSource`] port. `bitsage-chain` ships `StarknetChainSource` (JSON-RPC);
//! an integrator who already indexes the contracts can answer from their own data instead.
//! Here that data is a JSON snapshot file (`chain-snapshot.json`) that the integrator's indexer
//! rewrites after every block it processes: the values of our contracts at one block, with
//! when that block was read. `SnapshotChainSource` answers from it:
//! - every answer carries the snapshot's block and read time ([`Observed`]), so the dashboard
//!   shows how old it is;
//! - a missing, unreadable or too old snapshot is [`Error::Unavailable`] with the reason (the
//!   dashboard then says `unavailable` for those fields), never made-up numbers;
//! - a wallet the snapshot does not list reads the contracts' default view (no stake, the
//!   starting reputation), as the `ChainSource` contract asks.
//!
//! `run` then assembles a coordinator as `bitsage_coordinator::serve` does — store, deployment
//! key, [`AppState`], the source attached with [`AppState::with_chain`] (and as the stake gate)
//! — serves it on 127.0.0.1 (a free port) over a temporary data directory, logs in as the
//! bootstrap admin, reads `GET /api/validator/status` for a wallet as any client would and
//! checks that stake and reputation are the snapshot's. It also runs BitSage's conformance
//! suite for chain sources (`bitsage_core::conformance::chain::run_all`) on the source.
//!
//! The snapshot the example writes (standing in for the indexer) holds illustrative values
//! for example wallets; the point is the path they take, not the numbers.
//!
//! `cargo test -p bitsage-coordinator --example own_chain_source` runs it as a test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use bitsage_coordinator::{load_deployment_key, open_stores, serve_state, CoordinatorConfig};
use bitsage_core::chain::{
    ChainReadAt, NetworkTotals, Observed, ReputationInfo, RewardsInfo, StakeInfo,
};
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, Error, Result, Timestamp, TokenAmount, WalletAddress};
use bitsage_http::dashboard::{Section, ValidatorStatus};
use bitsage_http::AppState;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the snapshot file

/// What the indexer writes: the contracts' state at one block.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    /// The block every value below was read at.
    block_number: u64,
    /// Its hash (hex), when the indexer records it.
    block_hash: Option<String>,
    /// When the indexer read that block.
    read_at: Timestamp,
    /// `ProverStaking.apy_bps`.
    apy_bps: u64,
    /// `ProverStaking.get_min_stake` of each tier.
    min_stake: BTreeMap<GpuTier, TokenAmount>,
    /// `ProverStaking.total_staked`.
    total_staked: TokenAmount,
    /// The wallets the indexer saw in the contracts' events.
    wallets: BTreeMap<WalletAddress, WalletState>,
}

/// One wallet as the contracts report it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WalletState {
    /// `ProverStaking.get_stake`.
    stake: StakeInfo,
    /// `ReputationManager.get_reputation`.
    reputation: ReputationInfo,
    /// `SAGE.balance_of`.
    sage_balance: TokenAmount,
}

// ---------------------------------------------------------------- the source

const NAME: &str = "indexer-snapshot";

/// A [`ChainSource`] answering from the snapshot file an indexer maintains.
#[derive(Debug, Clone)]
struct SnapshotChainSource {
    path: PathBuf,
    /// Older snapshots are refused: the indexer has stopped or fallen behind.
    max_age: Duration,
}

impl SnapshotChainSource {
    fn new(path: impl Into<PathBuf>, max_age: Duration) -> Self {
        Self {
            path: path.into(),
            max_age,
        }
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            source_name: NAME.into(),
            reason,
        }
    }

    /// Reads the snapshot (each call: the indexer may have replaced it since) and answers
    /// `f` of it, with the snapshot's provenance.
    async fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> Result<Observed<T>> {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.unavailable(format!(
                    "no chain snapshot at {} yet (has the indexer run?)",
                    self.path.display()
                )))
            }
            Err(e) => {
                return Err(self.unavailable(format!(
                    "cannot read the chain snapshot {}: {e}",
                    self.path.display()
                )))
            }
        };
        let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
            self.unavailable(format!(
                "the chain snapshot {} is malformed: {e}",
                self.path.display()
            ))
        })?;
        let at = ChainReadAt {
            block_number: snapshot.block_number,
            block_hash: snapshot.block_hash.clone(),
            read_at: snapshot.read_at,
        };
        let observed = Observed {
            value: f(&snapshot),
            at,
        };
        let age = observed.age(bitsage_core::time::now());
        if age > self.max_age {
            return Err(self.unavailable(format!(
                "the chain snapshot is {} s old (block {}): the indexer has stopped or fallen behind",
                age.as_secs(),
                snapshot.block_number
            )));
        }
        Ok(observed)
    }
}

/// `ProverStaking.is_eligible`: an active stake whose free part meets the minimum of the tier
/// staked for.
fn eligible(snapshot: &Snapshot, stake: &StakeInfo) -> bool {
    let free = stake
        .amount
        .checked_sub(stake.locked_amount)
        .unwrap_or(TokenAmount::ZERO);
    let min = snapshot
        .min_stake
        .get(&stake.gpu_tier)
        .copied()
        .unwrap_or(TokenAmount::ZERO);
    stake.is_active && !free.is_zero() && free >= min
}

#[async_trait]
impl ChainSource for SnapshotChainSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn stake(&self, wallet: &WalletAddress) -> Result<Observed<StakeInfo>> {
        self.read(|s| {
            s.wallets
                .get(wallet)
                .map_or_else(StakeInfo::never_staked, |w| w.stake.clone())
        })
        .await
    }

    async fn rewards(&self, wallet: &WalletAddress) -> Result<Observed<RewardsInfo>> {
        self.read(|s| {
            let stake = s
                .wallets
                .get(wallet)
                .map_or_else(StakeInfo::never_staked, |w| w.stake.clone());
            RewardsInfo {
                pending: stake.pending_rewards,
                last_claim_at: stake.last_claim_at,
            }
        })
        .await
    }

    async fn reputation(&self, wallet: &WalletAddress) -> Result<Observed<ReputationInfo>> {
        self.read(|s| {
            s.wallets
                .get(wallet)
                .map_or_else(ReputationInfo::starting, |w| w.reputation.clone())
        })
        .await
    }

    async fn token_balance(&self, wallet: &WalletAddress) -> Result<Observed<TokenAmount>> {
        self.read(|s| {
            s.wallets
                .get(wallet)
                .map_or(TokenAmount::ZERO, |w| w.sage_balance)
        })
        .await
    }

    async fn totals(&self) -> Result<Observed<NetworkTotals>> {
        self.read(|s| NetworkTotals {
            total_staked: s.total_staked,
        })
        .await
    }

    async fn min_stake(&self, tier: GpuTier) -> Result<Observed<TokenAmount>> {
        let observed = self.read(|s| s.min_stake.get(&tier).copied()).await?;
        match observed.value {
            Some(value) => Ok(Observed {
                value,
                at: observed.at,
            }),
            None => Err(self.unavailable(format!(
                "the chain snapshot has no minimum stake for the {} tier",
                tier.label()
            ))),
        }
    }

    async fn is_eligible(&self, wallet: &WalletAddress) -> Result<Observed<bool>> {
        self.read(|s| {
            let stake = s
                .wallets
                .get(wallet)
                .map_or_else(StakeInfo::never_staked, |w| w.stake.clone());
            eligible(s, &stake)
        })
        .await
    }

    async fn apy_bps(&self) -> Result<Observed<u64>> {
        self.read(|s| s.apy_bps).await
    }
}

// ---------------------------------------------------------------- the demo

/// `n` whole SAGE.
fn sage(n: u64) -> TokenAmount {
    TokenAmount::parse_units(&n.to_string(), bitsage_core::amount::SAGE_DECIMALS)
        .expect("a valid amount")
}

/// Writes a snapshot as the indexer would (atomically: a temporary file renamed into place),
/// with illustrative values: `staked` has 1,500 SAGE staked for the DataCenter tier.
fn write_demo_snapshot(path: &Path, staked: WalletAddress) -> anyhow::Result<Snapshot> {
    let now = bitsage_core::time::now();
    let min_stake = GpuTier::ALL
        .into_iter()
        .zip([100, 500, 1_000, 5_000, 10_000])
        .map(|(tier, n)| (tier, sage(n)))
        .collect();
    let stake = StakeInfo {
        amount: sage(1_500),
        staked_at: Some(now - chrono::TimeDelta::days(30)),
        gpu_tier: GpuTier::DataCenter,
        is_active: true,
        pending_rewards: sage(12),
        ..StakeInfo::never_staked()
    };
    let reputation = ReputationInfo {
        score: 620,
        level: 3,
        last_updated: Some(now - chrono::TimeDelta::hours(2)),
        total_jobs_completed: 14,
        successful_jobs: 13,
        failed_jobs: 1,
        ..ReputationInfo::starting()
    };
    let snapshot = Snapshot {
        block_number: 1_234,
        block_hash: None,
        read_at: now,
        apy_bps: 1_000,
        min_stake,
        total_staked: sage(1_500),
        wallets: BTreeMap::from([(
            staked,
            WalletState {
                stake,
                reputation,
                sage_balance: sage(250),
            },
        )]),
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&snapshot)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(snapshot)
}

/// What the run found (`check` asserts on it).
#[derive(Debug)]
struct Outcome {
    /// What the snapshot said.
    snapshot: Snapshot,
    /// The wallet whose status was read.
    wallet: WalletAddress,
    /// `GET /api/validator/status` for it.
    status: ValidatorStatus,
    /// The source's answer before the snapshot existed.
    before_snapshot: Error,
}

async fn run() -> anyhow::Result<Outcome> {
    let data = tempfile::tempdir()?;
    // Two example wallets (any Starknet addresses): one the snapshot lists, one it does not.
    let staked =
        WalletAddress::parse("0x0519e7a1d2f0c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6")?;
    let fresh =
        WalletAddress::parse("0x07f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3")?;

    // The source, over a snapshot that does not exist yet.
    let snapshot_path = data.path().join("chain-snapshot.json");
    let source = SnapshotChainSource::new(&snapshot_path, Duration::from_secs(600));
    let before_snapshot = source
        .stake(&staked)
        .await
        .expect_err("no snapshot yet: unavailable");
    println!("before the indexer ran: {before_snapshot}");
    let snapshot = write_demo_snapshot(&snapshot_path, staked)?;
    let stake = source.stake(&staked).await?;
    println!(
        "source: {} staked for {} at block {} (read {})",
        stake.value.amount.format_sage(),
        stake.value.gpu_tier.label(),
        stake.at.block_number,
        stake.at.read_at
    );

    // The port's contract, checked by BitSage's own suite (panics on a violation).
    bitsage_core::conformance::chain::run_all(&source, &staked, &fresh).await;
    println!("ChainSource conformance: passed");

    // The coordinator, assembled as `bitsage_coordinator::serve` does, with our source.
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    let (username, password) = ("admin", "example-admin-password");
    let mut config = CoordinatorConfig::new(listen, data.path().join("coordinator"));
    // The first admin, created by `serve_state` when the deployment has none.
    config.bootstrap_admin = Some((username.to_string(), password.to_string()));
    std::fs::create_dir_all(&config.data_dir)?;
    let deployment =
        load_deployment_key(&config.deployment_key, &config.data_dir, &config.network)?;
    let stores = open_stores(&config).await?;
    let chain: bitsage_core::DynChainSource = Arc::new(source);
    let payers: Arc<dyn bitsage_core::PayerLedger> = stores.store.clone();
    let state = AppState::new(
        stores.store.clone(),
        Arc::new(bitsage_prover::StwoProver::new()),
        stores.proofs,
        deployment,
        config.http.clone(),
    )
    // Without a chain of payer accounts, payers sign with the key stored with their local
    // credit (as `serve` does).
    .with_payer_verifier(Arc::new(bitsage_chain::StoredKeyVerifier::new(payers)))
    .with_policy(config.policy.clone())
    .with_live_events(Some(stores.bus), config.live.clone())
    // The dashboard's stake, rewards and reputation come from our source...
    .with_chain(chain.clone())
    // ...and nodes work only while it says their stake meets their tier's minimum.
    .with_stake_gate(chain);
    let running = serve_state(config, state).await?;
    let url = running.url();
    println!("coordinator listening on {url}");

    // A client: log in, read the wallet's status.
    let client = reqwest::Client::new();
    let session: serde_json::Value = client
        .post(format!("{url}/api/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = session["access_token"]
        .as_str()
        .context("the login answer has an access token")?;
    let status: ValidatorStatus = client
        .get(format!("{url}/api/validator/status"))
        .bearer_auth(token)
        .header("X-Wallet-Address", staked.to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    match (&status.stake, &status.reputation) {
        (Section::Ok(stake), Section::Ok(rep)) => println!(
            "GET /api/validator/status: stake {} ({}), reputation {} (level {}) at block {}, {} s old",
            stake.value.amount_formatted,
            stake.value.gpu_tier.label(),
            rep.value.score,
            rep.value.level,
            stake.block_number,
            stake.age_secs
        ),
        (stake, rep) => println!("GET /api/validator/status: stake {stake:?}, reputation {rep:?}"),
    }

    running.shutdown().await?;
    Ok(Outcome {
        snapshot,
        wallet: staked,
        status,
        before_snapshot,
    })
}

/// What the run must have found (panics otherwise): the dashboard's stake, rewards and
/// reputation are the snapshot's, at the snapshot's block.
fn check(outcome: &Outcome) {
    let Outcome {
        snapshot,
        wallet,
        status,
        before_snapshot,
    } = outcome;
    assert!(
        matches!(before_snapshot, Error::Unavailable { reason, .. } if reason.contains("no chain snapshot")),
        "{before_snapshot:?}"
    );
    assert_eq!(status.wallet, *wallet);
    let written = &snapshot.wallets[wallet];
    let stake = status.stake.ok().expect("stake from the source");
    assert_eq!(stake.value.amount, written.stake.amount);
    assert_eq!(stake.value.gpu_tier, written.stake.gpu_tier);
    assert_eq!(stake.block_number, snapshot.block_number);
    assert_eq!(stake.read_at, snapshot.read_at);
    let rep = status.reputation.ok().expect("reputation from the source");
    assert_eq!(rep.value, written.reputation);
    assert_eq!(rep.block_number, snapshot.block_number);
    let rewards = status.rewards.ok().expect("rewards from the source");
    assert_eq!(rewards.value.pending, written.stake.pending_rewards);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    check(&run().await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs() {
        super::check(&super::run().await.expect("run the example"));
    }
}
