//! A local Starknet chain for tests and `bitsage-coordinator dev`: starts `starknet-devnet`
//! (0.10.1), declares and deploys our contracts (sources in the repository's `contracts/`,
//! Sierra classes embedded from this crate's `classes/`), mints, stakes and reports
//! reputation. Feature `devnet`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bitsage_chain::devnet::DevnetError> {
//! use bitsage_chain::devnet::{deploy_contracts, Devnet};
//! use bitsage_core::{gpu::GpuTier, TokenAmount};
//!
//! let devnet = Devnet::start().await?; // killed when dropped
//! let deployment = deploy_contracts(&devnet).await?;
//! let worker = deployment.accounts[1].clone();
//! let amount = TokenAmount::parse_units("1000", 18).expect("amount");
//! deployment.mint_sage(worker.address, amount).await?;
//! deployment.stake(&worker, amount, GpuTier::DataCenter).await?;
//! // Read it back with StarknetChainSource over devnet.rpc_url() and
//! // deployment.contract_addresses().
//! # Ok(()) }
//! ```
//!
//! # API stability
//! Other modules' tests (the indexer's reorg test) build on this API: [`Devnet`]'s
//! `start`/`start_on`/`kill`/`restart`, its RPC helpers (`create_block`, `increase_time`,
//! `abort_blocks`, `mint`, `predeployed_accounts`, `rpc`, `provider`) and [`Deployment`]'s
//! transaction helpers. Extend it; do not change what exists.
//!
//! # The process
//! [`Devnet::start`] runs `starknet-devnet --host 127.0.0.1 --port 0 --seed 42 --accounts 3
//! --state-archive-capacity full` (the binary from [`Devnet::binary`]), reads the port from its
//! `listening on 127.0.0.1:<port>` log line, and waits for `GET /is_alive`. The process is
//! killed when the [`Devnet`] is dropped. Its output is drained by threads (so it never blocks
//! on a full pipe) and its last lines are kept for error messages.
//!
//! # Determinism
//! With seed 42 the predeployed accounts are the same on every start, and contracts are
//! deployed through the UDC with fixed salts and `unique = false`: a fresh devnet (for example
//! one restarted on the same port after an outage test) gets the same contract addresses from
//! [`deploy_contracts`]. Deploying twice on one devnet reuses what is already there.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitsage_core::gpu::GpuTier;
use bitsage_core::{TokenAmount, WalletAddress};
use serde_json::{json, Value};
use starknet::accounts::{Account, ConnectedAccount, ExecutionEncoding, SingleOwnerAccount};
use starknet::contract::{ContractFactory, UdcSelector};
use starknet::core::types::contract::SierraClass;
use starknet::core::types::{Call, ExecutionResult, FunctionCall};
use starknet::core::utils::{cairo_short_string_to_felt, get_selector_from_name};
use starknet::providers::jsonrpc::HttpTransport;
use starknet::providers::{JsonRpcClient, Provider, ProviderError};
use starknet::signers::{LocalWallet, SigningKey};
use url::Url;

use crate::starknet_source::decode::felt_hex;
use crate::ContractAddresses;

pub use starknet::core::types::{BlockId, BlockTag, Felt};

/// The devnet version this harness is written and tested against.
pub const DEVNET_VERSION: &str = "0.10.1";
/// The seed the harness starts devnet with (fixed accounts).
pub const DEVNET_SEED: u64 = 42;
/// How many predeployed accounts the harness asks for. Account 0 deploys and owns the
/// contracts; the others are workers.
pub const DEVNET_ACCOUNTS: usize = 3;
/// The staking contract's APY in basis points (10 %).
pub const APY_BPS: u64 = 1000;
/// The staking contract's unstake lockup, seconds.
pub const LOCKUP_SECS: u64 = 60;
/// Minimum stakes per tier (Consumer … Frontier), whole SAGE.
pub const MIN_STAKES_SAGE: [u64; 5] = [100, 500, 1000, 5000, 10000];

/// How long an escrow withdrawal waits after it is requested, seconds.
pub const ESCROW_WITHDRAW_DELAY_SECS: u64 = 3600;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_LINES_KEPT: usize = 40;

/// A predeployed account whose signer is a [`LocalWallet`] — what devnet's accounts are.
pub type DevnetAccount = SingleOwnerAccount<JsonRpcClient<HttpTransport>, LocalWallet>;

/// What can go wrong starting a devnet or transacting on it. Texts may include provider
/// detail: this is test and development tooling, never shown to HTTP clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// No `starknet-devnet` binary was found.
    #[error(
        "starknet-devnet not found: set STARKNET_DEVNET, put it on PATH, or run \
         scripts/install-devnet.sh (installs {DEVNET_VERSION} into ~/.cache/bitsage-tools/bin)"
    )]
    BinaryNotFound,
    /// The binary could not be run.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process started but did not become ready.
    #[error("starknet-devnet did not start: {0}")]
    Startup(String),
    /// A devnet or Starknet JSON-RPC request failed.
    #[error("devnet request {method} failed: {reason}")]
    Rpc {
        /// The JSON-RPC method.
        method: String,
        /// Why.
        reason: String,
    },
    /// A contract class could not be read or compiled.
    #[error("contract class {name}: {reason}")]
    Class {
        /// The contract.
        name: String,
        /// Why.
        reason: String,
    },
    /// A transaction failed to send or reverted.
    #[error("transaction {what} failed: {reason}")]
    Transaction {
        /// What it was, e.g. `"stake"`.
        what: String,
        /// Why (the revert reason, when it reverted).
        reason: String,
    },
}

/// Result alias of this module.
pub type DevnetResult<T> = std::result::Result<T, DevnetError>;

impl From<DevnetError> for bitsage_core::Error {
    fn from(e: DevnetError) -> Self {
        bitsage_core::Error::backend("devnet", e)
    }
}

fn rpc_error(method: &str, reason: impl std::fmt::Display) -> DevnetError {
    DevnetError::Rpc {
        method: method.to_string(),
        reason: reason.to_string(),
    }
}

fn tx_error(what: &str, reason: impl std::fmt::Display) -> DevnetError {
    DevnetError::Transaction {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

// ---------------------------------------------------------------- the process

/// A running `starknet-devnet` on loopback, killed on drop.
pub struct Devnet {
    child: Option<Child>,
    port: u16,
    url: Url,
    http: reqwest::Client,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet")
            .field("url", &self.url.as_str())
            .field("running", &self.child.is_some())
            .finish()
    }
}

/// Removes ANSI escape sequences (`ESC [ … letter`) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The port of a `… listening on 127.0.0.1:<port>` log line.
fn listening_port(line: &str) -> Option<u16> {
    let plain = strip_ansi(line);
    let rest = &plain[plain.find("listening on ")? + "listening on ".len()..];
    let after_host = &rest[rest.rfind(':').filter(|i| *i < 64)? + 1..];
    let digits: String = after_host
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn is_executable(p: &Path) -> bool {
    p.is_file()
}

impl Devnet {
    /// Whether a devnet can be started, for a test or example named `what` that needs one:
    /// `false` (with the reason printed) when it should skip. Under `CI=true` a missing devnet
    /// is a failure instead: CI must not pass by skipping.
    ///
    /// # Panics
    /// Under `CI=true` when no `starknet-devnet` binary is found.
    pub fn available_or_skip(what: &str) -> bool {
        if Self::binary().is_some() {
            return true;
        }
        let reason = DevnetError::BinaryNotFound;
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what}: {reason}; CI=true requires the devnet (scripts/test.sh installs it)");
        }
        eprintln!("SKIPPED {what}: {reason}");
        false
    }

    /// The `starknet-devnet` binary: `$STARKNET_DEVNET`, else `starknet-devnet` on `PATH`,
    /// else `$BITSAGE_TOOLS_DIR/bin/starknet-devnet` (default `~/.cache/bitsage-tools`, where
    /// `scripts/install-devnet.sh` installs it). `None` when none exists.
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("STARKNET_DEVNET").filter(|s| !s.is_empty()) {
            let p = PathBuf::from(p);
            if is_executable(&p) {
                return Some(p);
            }
            tracing::warn!(path = %p.display(), "STARKNET_DEVNET names no file; looking elsewhere");
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let p = dir.join("starknet-devnet");
                if is_executable(&p) {
                    return Some(p);
                }
            }
        }
        let tools = std::env::var_os("BITSAGE_TOOLS_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bitsage-tools"))
            })?;
        let p = tools.join("bin/starknet-devnet");
        is_executable(&p).then_some(p)
    }

    /// Starts a devnet on a free port.
    pub async fn start() -> DevnetResult<Self> {
        Self::start_on(0).await
    }

    /// Starts a devnet on `port` (0: a free one). The devnet dies with the process that
    /// started it, even on SIGKILL (see [`orphan_proof_command`]). A port just released by a killed devnet is
    /// retried for a few seconds, so a test can kill a devnet and start a fresh one where its
    /// clients expect it.
    pub async fn start_on(port: u16) -> DevnetResult<Self> {
        let binary = Self::binary().ok_or(DevnetError::BinaryNotFound)?;
        let mut last = None;
        for _ in 0..if port == 0 { 1 } else { 10 } {
            match Self::spawn(&binary, port).await {
                Ok(d) => return Ok(d),
                Err(e @ DevnetError::Startup(_)) => {
                    tracing::warn!(error = %e, port, "devnet start failed; retrying");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DevnetError::Startup("no attempt made".into())))
    }

    async fn spawn(binary: &Path, port: u16) -> DevnetResult<Self> {
        let mut child = orphan_proof_command(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--seed",
                &DEVNET_SEED.to_string(),
                "--accounts",
                &DEVNET_ACCOUNTS.to_string(),
                "--state-archive-capacity",
                "full",
            ])
            // The harness reads devnet's `listening on` line, an info-level log: a RUST_LOG
            // inherited from the caller (e.g. `warn`) would hide it.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DevnetError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, mut port_rx) = tokio::sync::mpsc::unbounded_channel::<Option<u16>>();
        // Threads, not tasks: the pipes are drained whatever runtime (or none) is running.
        let readers: Vec<Box<dyn std::io::Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        let streams = readers.len();
        for reader in readers {
            let log = log.clone();
            let tx = port_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if let Some(p) = listening_port(&line) {
                        let _ = tx.send(Some(p));
                    }
                    let plain = strip_ansi(&line);
                    tracing::trace!(target: "starknet_devnet", "{plain}");
                    if let Ok(mut l) = log.lock() {
                        if l.len() >= LOG_LINES_KEPT {
                            l.pop_front();
                        }
                        l.push_back(plain);
                    }
                }
                let _ = tx.send(None);
            });
        }
        drop(port_tx);
        let mut devnet = Devnet {
            child: Some(child),
            port,
            url: Url::parse("http://127.0.0.1/")
                .map_err(|e| DevnetError::Startup(e.to_string()))?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| DevnetError::Startup(e.to_string()))?,
            log,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut closed = 0;
        let found = loop {
            match tokio::time::timeout_at(deadline.into(), port_rx.recv()).await {
                Ok(Some(Some(p))) => break Some(p),
                Ok(Some(None)) => {
                    closed += 1;
                    if closed == streams {
                        break None;
                    }
                }
                Ok(None) | Err(_) => break None,
            }
        };
        let Some(found) = found else {
            let tail = devnet.log_tail();
            devnet.kill_now();
            return Err(DevnetError::Startup(format!(
                "no `listening on` line within {} s; last output:\n{tail}",
                STARTUP_TIMEOUT.as_secs()
            )));
        };
        devnet.port = found;
        devnet.url = Url::parse(&format!("http://127.0.0.1:{found}/"))
            .map_err(|e| DevnetError::Startup(e.to_string()))?;
        // Ready when it answers.
        loop {
            if devnet.is_alive().await {
                tracing::info!(url = %devnet.url, "starknet-devnet ready");
                return Ok(devnet);
            }
            if Instant::now() >= deadline || devnet.exited() {
                let tail = devnet.log_tail();
                devnet.kill_now();
                return Err(DevnetError::Startup(format!(
                    "GET /is_alive did not answer; last output:\n{tail}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last lines devnet printed (for diagnostics).
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The JSON-RPC endpoint, `http://127.0.0.1:<port>/rpc`.
    pub fn rpc_url(&self) -> Url {
        let mut u = self.url.clone();
        u.set_path("/rpc");
        u
    }

    /// A `starknet` provider for it.
    pub fn provider(&self) -> JsonRpcClient<HttpTransport> {
        JsonRpcClient::new(HttpTransport::new(self.rpc_url()))
    }

    /// Whether `GET /is_alive` answers 200.
    pub async fn is_alive(&self) -> bool {
        let Ok(u) = self.url.join("is_alive") else {
            return false;
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.http.get(u).send()).await,
            Ok(Ok(r)) if r.status().is_success()
        )
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The devnet process id (`None` once killed): tests pause it (SIGSTOP) to stage an outage
    /// that keeps the chain's state.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the process (an outage); idempotent. The port is free again when this returns.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Kills it (if running) and starts a fresh devnet — a new, empty chain — on the same port.
    pub async fn restart(&mut self) -> DevnetResult<()> {
        self.kill().await;
        let fresh = Self::start_on(self.port).await?;
        *self = fresh;
        Ok(())
    }

    // ------------------------------------------------------------ JSON-RPC helpers

    /// A raw JSON-RPC call (`devnet_*` or `starknet_*`); the `result`, or the `error` as
    /// [`DevnetError::Rpc`].
    pub async fn rpc(&self, method: &str, params: Value) -> DevnetResult<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.rpc_body(method, body.to_string()).await
    }

    async fn rpc_body(&self, method: &str, body: String) -> DevnetResult<Value> {
        let reply: Value = self
            .http
            .post(self.rpc_url())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| rpc_error(method, e))?
            .json()
            .await
            .map_err(|e| rpc_error(method, e))?;
        if let Some(err) = reply.get("error") {
            return Err(rpc_error(method, err));
        }
        reply
            .get("result")
            .cloned()
            .ok_or_else(|| rpc_error(method, format!("no result in {reply}")))
    }

    /// The predeployed accounts (`devnet_getPredeployedAccounts`), account 0 first.
    pub async fn predeployed_accounts(&self) -> DevnetResult<Vec<PredeployedAccount>> {
        const M: &str = "devnet_getPredeployedAccounts";
        let result = self.rpc(M, json!({})).await?;
        let list = result
            .as_array()
            .ok_or_else(|| rpc_error(M, "result is not a list"))?;
        list.iter()
            .map(|a| {
                let felt = |k: &str| {
                    a.get(k)
                        .and_then(Value::as_str)
                        .and_then(|s| Felt::from_hex(s).ok())
                        .ok_or_else(|| rpc_error(M, format!("account without a valid `{k}`")))
                };
                let address = felt("address")?;
                let wallet = WalletAddress::from_bytes(address.to_bytes_be())
                    .map_err(|e| rpc_error(M, format!("account address: {e}")))?;
                Ok(PredeployedAccount {
                    address,
                    wallet,
                    private_key: felt("private_key")?,
                    public_key: felt("public_key")?,
                })
            })
            .collect()
    }

    /// Mints `amount` FRI (STRK base units, for fees) to `address` (`devnet_mint`); returns
    /// the new balance as devnet reports it.
    pub async fn mint(&self, address: Felt, amount: u128) -> DevnetResult<Value> {
        // A u128 does not fit a serde_json number: write the literal by hand.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"devnet_mint","params":{{"address":"{}","amount":{amount},"unit":"FRI"}}}}"#,
            felt_hex(&address)
        );
        self.rpc_body("devnet_mint", body).await
    }

    /// Closes the current block and opens a new one (`devnet_createBlock`); returns the new
    /// block's hash.
    pub async fn create_block(&self) -> DevnetResult<Felt> {
        const M: &str = "devnet_createBlock";
        let r = self.rpc(M, json!({})).await?;
        hash_field(M, &r, "block_hash")
    }

    /// Moves block time forward by `secs` (`devnet_increaseTime`); devnet creates a block
    /// with the new time, whose hash this returns when devnet reports one.
    pub async fn increase_time(&self, secs: u64) -> DevnetResult<Option<Felt>> {
        const M: &str = "devnet_increaseTime";
        let r = self.rpc(M, json!({ "time": secs })).await?;
        Ok(hash_field(M, &r, "block_hash").ok())
    }

    /// A real reorg (`devnet_abortBlocks`): aborts `starting` and every block after it;
    /// returns the aborted blocks' hashes. New transactions then build a different chain
    /// from the parent of `starting`.
    pub async fn abort_blocks(&self, starting: BlockId) -> DevnetResult<Vec<Felt>> {
        const M: &str = "devnet_abortBlocks";
        let id = match starting {
            BlockId::Hash(h) => json!({ "block_hash": felt_hex(&h) }),
            BlockId::Number(n) => json!({ "block_number": n }),
            BlockId::Tag(BlockTag::Latest) => json!("latest"),
            BlockId::Tag(BlockTag::PreConfirmed) => json!("pre_confirmed"),
            BlockId::Tag(BlockTag::L1Accepted) => json!("l1_accepted"),
        };
        let r = self.rpc(M, json!({ "starting_block_id": id })).await?;
        r.get("aborted")
            .and_then(Value::as_array)
            .ok_or_else(|| rpc_error(M, format!("no `aborted` list in {r}")))?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|s| Felt::from_hex(s).ok())
                    .ok_or_else(|| rpc_error(M, format!("bad hash {h}")))
            })
            .collect()
    }

    /// The latest block's number and hash.
    pub async fn head(&self) -> DevnetResult<(u64, Felt)> {
        let h = self
            .provider()
            .block_hash_and_number()
            .await
            .map_err(|e| rpc_error("starknet_blockHashAndNumber", e))?;
        Ok((h.block_number, h.block_hash))
    }
}

fn hash_field(method: &str, v: &Value, field: &str) -> DevnetResult<Felt> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| Felt::from_hex(s).ok())
        .ok_or_else(|| rpc_error(method, format!("no `{field}` in {v}")))
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// One of devnet's predeployed, funded accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredeployedAccount {
    /// The account contract's address.
    pub address: Felt,
    /// The same address as a wallet (what a `ChainSource` is asked about).
    pub wallet: WalletAddress,
    /// Its private key (a test key).
    pub private_key: Felt,
    /// Its public key.
    pub public_key: Felt,
}

// ---------------------------------------------------------------- contracts

/// The Sierra classes of our three contracts (JSON text, as `scripts/build-contracts.sh`
/// writes them to `bitsage-chain/classes/`).
#[derive(Clone)]
pub struct ContractClasses {
    /// `SageToken`.
    pub sage_token: String,
    /// `ProverStaking`.
    pub prover_staking: String,
    /// `ReputationManager`.
    pub reputation_manager: String,
    /// `JobEscrow`.
    pub job_escrow: String,
}

impl std::fmt::Debug for ContractClasses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractClasses")
            .field("sage_token", &self.sage_token.len())
            .field("prover_staking", &self.prover_staking.len())
            .field("reputation_manager", &self.reputation_manager.len())
            .field("job_escrow", &self.job_escrow.len())
            .finish()
    }
}

impl ContractClasses {
    /// The classes built into this crate at compile time from `bitsage-chain/classes/` (so a binary
    /// can deploy them from anywhere).
    pub fn embedded() -> Self {
        Self {
            sage_token: include_str!("../classes/sage_token.contract_class.json").to_string(),
            prover_staking: include_str!("../classes/prover_staking.contract_class.json")
                .to_string(),
            reputation_manager: include_str!("../classes/reputation_manager.contract_class.json")
                .to_string(),
            job_escrow: include_str!("../classes/job_escrow.contract_class.json").to_string(),
        }
    }

    /// The classes in `dir` (a `bitsage-chain/classes/` directory).
    pub fn from_dir(dir: &Path) -> DevnetResult<Self> {
        let read = |name: &str| {
            let p = dir.join(format!("{name}.contract_class.json"));
            std::fs::read_to_string(&p).map_err(|e| DevnetError::Class {
                name: name.to_string(),
                reason: format!("cannot read {}: {e}", p.display()),
            })
        };
        Ok(Self {
            sage_token: read("sage_token")?,
            prover_staking: read("prover_staking")?,
            reputation_manager: read("reputation_manager")?,
            job_escrow: read("job_escrow")?,
        })
    }
}

/// The compiled-class hash devnet 0.10.1 expects for a Sierra class: the Blake2 hash of its
/// CASM, compiled with `cairo-lang-starknet-classes` 2.19.4 (the version devnet uses; starknet-rs
/// 0.17 computes only the older Poseidon hash).
pub fn compiled_class_hash(name: &str, sierra_json: &str) -> DevnetResult<Felt> {
    use cairo_lang_starknet_classes::casm_contract_class::CasmContractClass;
    use cairo_lang_starknet_classes::contract_class::ContractClass;
    let bad = |reason: String| DevnetError::Class {
        name: name.to_string(),
        reason,
    };
    let class: ContractClass =
        serde_json::from_str(sierra_json).map_err(|e| bad(format!("not a Sierra class: {e}")))?;
    let program = class
        .extract_sierra_program(false)
        .map_err(|e| bad(format!("cannot extract the Sierra program: {e}")))?;
    let casm = CasmContractClass::from_contract_class(class, program, false, usize::MAX)
        .map_err(|e| bad(format!("Sierra → CASM failed: {e}")))?;
    Ok(Felt::from_bytes_be(
        &casm.compiled_class_hash().to_bytes_be(),
    ))
}

/// A job outcome, as `ReputationManager::update_reputation` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A job succeeded (+10).
    JobSucceeded,
    /// A job failed (−25).
    JobFailed,
    /// A dispute (−50).
    Dispute,
    /// A slash (−100).
    Slash,
}

impl Outcome {
    /// The Cairo enum's variant index.
    pub fn index(self) -> u64 {
        match self {
            Outcome::JobSucceeded => 0,
            Outcome::JobFailed => 1,
            Outcome::Dispute => 2,
            Outcome::Slash => 3,
        }
    }
}

/// A transaction that made it into a block and succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    /// The transaction hash.
    pub tx_hash: Felt,
    /// The block it is in.
    pub block_number: u64,
    /// That block's hash (`None` while the block is pre-confirmed).
    pub block_hash: Option<Felt>,
}

/// Our three contracts deployed on a devnet, and the accounts to drive them.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `SageToken`'s address.
    pub token: Felt,
    /// `ProverStaking`'s address.
    pub staking: Felt,
    /// `ReputationManager`'s address.
    pub reputation: Felt,
    /// `JobEscrow` (settler and fee recipient: account 0).
    pub escrow: Felt,
    /// Account 0: deployer, owner of all three, the staking verifier and a reputation updater.
    pub owner: PredeployedAccount,
    /// Every predeployed account (`accounts[0]` is the owner; the others are free to use as
    /// workers).
    pub accounts: Vec<PredeployedAccount>,
    addresses: ContractAddresses,
    rpc_url: Url,
    chain_id: Felt,
}

fn u256_felts(amount: TokenAmount) -> [Felt; 2] {
    let (low, high) = amount.to_limbs();
    [Felt::from(low), Felt::from(high)]
}

fn selector(name: &str) -> DevnetResult<Felt> {
    get_selector_from_name(name).map_err(|e| tx_error(name, e))
}

fn as_address(what: &'static str, f: &Felt) -> DevnetResult<WalletAddress> {
    WalletAddress::from_bytes(f.to_bytes_be()).map_err(|e| tx_error(what, e))
}

/// Declares and deploys the embedded classes ([`ContractClasses::embedded`]) from account 0.
pub async fn deploy_contracts(devnet: &Devnet) -> DevnetResult<Deployment> {
    deploy_contracts_with(devnet, &ContractClasses::embedded()).await
}

/// Declares `classes` (unless already declared) and deploys them through the UDC (unless
/// already deployed at their deterministic addresses) from account 0: the token (owner
/// account 0), the staking contract (owner and verifier account 0, APY [`APY_BPS`], lockup
/// [`LOCKUP_SECS`], minimum stakes [`MIN_STAKES_SAGE`]) and the reputation manager (owner
/// account 0).
pub async fn deploy_contracts_with(
    devnet: &Devnet,
    classes: &ContractClasses,
) -> DevnetResult<Deployment> {
    let accounts = devnet.predeployed_accounts().await?;
    let owner = accounts
        .first()
        .cloned()
        .ok_or_else(|| rpc_error("devnet_getPredeployedAccounts", "no accounts"))?;
    let provider = devnet.provider();
    let chain_id = provider
        .chain_id()
        .await
        .map_err(|e| rpc_error("starknet_chainId", e))?;
    let rpc_url = devnet.rpc_url();
    let account = account_for(&rpc_url, chain_id, &owner);

    let token_class = declare(&account, "sage_token", &classes.sage_token).await?;
    let staking_class = declare(&account, "prover_staking", &classes.prover_staking).await?;
    let reputation_class =
        declare(&account, "reputation_manager", &classes.reputation_manager).await?;

    let token = deploy(&account, "sage_token", token_class, vec![owner.address]).await?;
    let mut staking_args = vec![owner.address, owner.address, token];
    staking_args.extend(u256_felts(TokenAmount::from(APY_BPS)));
    staking_args.push(Felt::from(LOCKUP_SECS));
    for sage in MIN_STAKES_SAGE {
        let base = TokenAmount::parse_units(&sage.to_string(), bitsage_core::amount::SAGE_DECIMALS)
            .map_err(|e| tx_error("min stake", e))?;
        staking_args.extend(u256_felts(base));
    }
    let staking = deploy(&account, "prover_staking", staking_class, staking_args).await?;
    let reputation = deploy(
        &account,
        "reputation_manager",
        reputation_class,
        vec![owner.address],
    )
    .await?;
    let escrow_class = declare(&account, "job_escrow", &classes.job_escrow).await?;
    // owner, settler, token, fee recipient, withdrawal delay, deployment key (set later).
    let escrow = deploy(
        &account,
        "job_escrow",
        escrow_class,
        vec![
            owner.address,
            owner.address,
            token,
            owner.address,
            Felt::from(ESCROW_WITHDRAW_DELAY_SECS),
            Felt::ZERO,
            Felt::ZERO,
        ],
    )
    .await?;
    let addresses = ContractAddresses {
        token: as_address("token address", &token)?,
        staking: as_address("staking address", &staking)?,
        reputation: as_address("reputation address", &reputation)?,
    };
    tracing::info!(token = %felt_hex(&token), staking = %felt_hex(&staking), reputation = %felt_hex(&reputation), "contracts deployed on devnet");
    Ok(Deployment {
        token,
        staking,
        reputation,
        escrow,
        owner,
        accounts,
        addresses,
        rpc_url,
        chain_id,
    })
}

fn account_for(rpc_url: &Url, chain_id: Felt, who: &PredeployedAccount) -> DevnetAccount {
    SingleOwnerAccount::new(
        JsonRpcClient::new(HttpTransport::new(rpc_url.clone())),
        LocalWallet::from(SigningKey::from_secret_scalar(who.private_key)),
        who.address,
        chain_id,
        ExecutionEncoding::New,
    )
}

async fn declare(account: &DevnetAccount, name: &str, sierra_json: &str) -> DevnetResult<Felt> {
    let class_error = |reason: String| DevnetError::Class {
        name: name.to_string(),
        reason,
    };
    let sierra: SierraClass = serde_json::from_str(sierra_json)
        .map_err(|e| class_error(format!("not a Sierra class: {e}")))?;
    let class_hash = sierra
        .class_hash()
        .map_err(|e| class_error(format!("class hash: {e}")))?;
    let provider = account.provider();
    if provider
        .get_class(BlockId::Tag(BlockTag::Latest), class_hash)
        .await
        .is_ok()
    {
        return Ok(class_hash);
    }
    let json = sierra_json.to_string();
    let owned_name = name.to_string();
    let compiled = tokio::task::spawn_blocking(move || compiled_class_hash(&owned_name, &json))
        .await
        .map_err(|e| class_error(format!("compiler task: {e}")))??;
    let flat = sierra
        .flatten()
        .map_err(|e| class_error(format!("flatten: {e}")))?;
    let what = format!("declare {name}");
    let sent = account
        .declare_v3(Arc::new(flat), compiled)
        .send()
        .await
        .map_err(|e| tx_error(&what, e))?;
    wait_for(provider, &what, sent.transaction_hash).await?;
    Ok(sent.class_hash)
}

async fn deploy(
    account: &DevnetAccount,
    name: &str,
    class_hash: Felt,
    calldata: Vec<Felt>,
) -> DevnetResult<Felt> {
    let salt =
        cairo_short_string_to_felt(&format!("bitsage:{name}")).map_err(|e| tx_error("salt", e))?;
    let factory = ContractFactory::new_with_udc(class_hash, account, UdcSelector::New);
    let deployment = factory.deploy_v3(calldata, salt, false);
    let address = deployment.deployed_address();
    if account
        .provider()
        .get_class_hash_at(BlockId::Tag(BlockTag::Latest), address)
        .await
        .is_ok()
    {
        return Ok(address);
    }
    let what = format!("deploy {name}");
    let sent = deployment.send().await.map_err(|e| tx_error(&what, e))?;
    wait_for(account.provider(), &what, sent.transaction_hash).await?;
    Ok(address)
}

/// Waits until `tx` has a receipt; fails when it reverted.
async fn wait_for(
    provider: &JsonRpcClient<HttpTransport>,
    what: &str,
    tx: Felt,
) -> DevnetResult<Included> {
    let deadline = Instant::now() + RECEIPT_TIMEOUT;
    loop {
        match provider.get_transaction_receipt(tx).await {
            Ok(r) => {
                if let ExecutionResult::Reverted { reason } = r.receipt.execution_result() {
                    return Err(tx_error(what, format!("reverted: {reason}")));
                }
                return Ok(Included {
                    tx_hash: tx,
                    block_number: r.block.block_number(),
                    block_hash: r.block.block_hash(),
                });
            }
            Err(ProviderError::StarknetError(
                starknet::core::types::StarknetError::TransactionHashNotFound,
            )) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(tx_error(what, format!("no receipt: {e}"))),
        }
    }
}

impl Deployment {
    /// The addresses for a [`crate::StarknetChainSource`].
    pub fn contract_addresses(&self) -> ContractAddresses {
        self.addresses
    }

    /// The chain id (`SN_SEPOLIA` on devnet).
    pub fn chain_id(&self) -> Felt {
        self.chain_id
    }

    /// A signing account for `who`.
    pub fn account(&self, who: &PredeployedAccount) -> DevnetAccount {
        account_for(&self.rpc_url, self.chain_id, who)
    }

    /// Sends `calls` as one transaction from `from` and waits for it.
    pub async fn invoke(
        &self,
        from: &PredeployedAccount,
        what: &str,
        calls: Vec<Call>,
    ) -> DevnetResult<Included> {
        let account = self.account(from);
        let sent = account
            .execute_v3(calls)
            .send()
            .await
            .map_err(|e| tx_error(what, e))?;
        wait_for(account.provider(), what, sent.transaction_hash).await
    }

    /// A call to `contract.function(calldata)` at `block` (`starknet_call`): the raw felts.
    pub async fn call(
        &self,
        contract: Felt,
        function: &str,
        calldata: Vec<Felt>,
        block: BlockId,
    ) -> DevnetResult<Vec<Felt>> {
        JsonRpcClient::new(HttpTransport::new(self.rpc_url.clone()))
            .call(
                FunctionCall {
                    contract_address: contract,
                    entry_point_selector: selector(function)?,
                    calldata,
                },
                block,
            )
            .await
            .map_err(|e| rpc_error(&format!("starknet_call {function}"), e))
    }

    /// Mints `amount` SAGE base units to `to` (owner-only `mint`).
    pub async fn mint_sage(&self, to: Felt, amount: TokenAmount) -> DevnetResult<Included> {
        let [low, high] = u256_felts(amount);
        let call = Call {
            to: self.token,
            selector: selector("mint")?,
            calldata: vec![to, low, high],
        };
        self.invoke(&self.owner, "mint SAGE", vec![call]).await
    }

    /// The escrow's address.
    pub fn escrow_address(&self) -> DevnetResult<WalletAddress> {
        as_address("escrow address", &self.escrow)
    }

    /// Deposits `amount` SAGE of `client` into the escrow (approve + deposit, one transaction).
    pub async fn deposit(
        &self,
        client: &PredeployedAccount,
        amount: TokenAmount,
    ) -> DevnetResult<Included> {
        let [low, high] = u256_felts(amount);
        let approve = Call {
            to: self.token,
            selector: selector("approve")?,
            calldata: vec![self.escrow, low, high],
        };
        let deposit = Call {
            to: self.escrow,
            selector: selector("deposit")?,
            calldata: vec![low, high],
        };
        self.invoke(client, "escrow deposit", vec![approve, deposit])
            .await
    }

    /// Publishes the deployment's receipt key in the escrow (owner only).
    pub async fn set_deployment_key(
        &self,
        key: &bitsage_core::crypto::PublicKey,
    ) -> DevnetResult<Included> {
        let b = key.to_bytes();
        let high = Felt::from_bytes_be_slice(&b[..16]);
        let low = Felt::from_bytes_be_slice(&b[16..]);
        let call = Call {
            to: self.escrow,
            selector: selector("set_deployment_key")?,
            calldata: vec![low, high],
        };
        self.invoke(&self.owner, "set deployment key", vec![call])
            .await
    }

    /// A SAGE balance.
    pub async fn sage_balance(&self, who: Felt) -> DevnetResult<TokenAmount> {
        let f = self
            .call(
                self.token,
                "balance_of",
                vec![who],
                BlockId::Tag(BlockTag::Latest),
            )
            .await?;
        let limb = |x: &Felt| {
            let b = x.to_bytes_be();
            let mut l = [0u8; 16];
            l.copy_from_slice(&b[16..]);
            u128::from_be_bytes(l)
        };
        Ok(TokenAmount::from_limbs(limb(&f[0]), limb(&f[1])))
    }

    /// Stakes `amount` for `tier` from `worker`, approving the staking contract first — one
    /// transaction (a multicall). The worker needs the SAGE ([`Deployment::mint_sage`]).
    pub async fn stake(
        &self,
        worker: &PredeployedAccount,
        amount: TokenAmount,
        tier: GpuTier,
    ) -> DevnetResult<Included> {
        let [low, high] = u256_felts(amount);
        let approve = Call {
            to: self.token,
            selector: selector("approve")?,
            calldata: vec![self.staking, low, high],
        };
        let stake = Call {
            to: self.staking,
            selector: selector("stake")?,
            calldata: vec![low, high, Felt::from(tier.index())],
        };
        self.invoke(worker, "stake", vec![approve, stake]).await
    }

    /// Claims `worker`'s accrued rewards (`claim_rewards`).
    pub async fn claim_rewards(&self, worker: &PredeployedAccount) -> DevnetResult<Included> {
        let call = Call {
            to: self.staking,
            selector: selector("claim_rewards")?,
            calldata: vec![],
        };
        self.invoke(worker, "claim rewards", vec![call]).await
    }

    /// Records a job outcome for `worker` (`update_reputation`, from the owner).
    pub async fn update_reputation(
        &self,
        worker: Felt,
        outcome: Outcome,
        job_id: Felt,
    ) -> DevnetResult<Included> {
        let call = Call {
            to: self.reputation,
            selector: selector("update_reputation")?,
            calldata: vec![worker, Felt::from(outcome.index()), job_id],
        };
        self.invoke(&self.owner, "update reputation", vec![call])
            .await
    }
}

/// Where util-linux's `setpriv` is looked for.
const SETPRIV: &str = "/usr/bin/setpriv";

/// A command running `binary` that dies with this process: on Linux it is started through
/// `setpriv --pdeathsig KILL`, which asks the kernel to SIGKILL it when its parent goes
/// away — also when the parent is SIGKILLed and cannot clean up (our crates forbid the
/// `unsafe` a `prctl` in `pre_exec` would need). The signal follows the spawning thread, and
/// the harness spawns from runtime worker threads, which live as long as the runtime. Where
/// `setpriv` is missing the binary is started directly and a warning says it may outlive us.
pub fn orphan_proof_command(binary: &Path) -> Command {
    if cfg!(target_os = "linux") && Path::new(SETPRIV).is_file() {
        let mut c = Command::new(SETPRIV);
        c.args(["--pdeathsig", "KILL", "--"]).arg(binary);
        c
    } else {
        tracing::warn!(
            binary = %binary.display(),
            "setpriv not found: this child may outlive a killed parent"
        );
        Command::new(binary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_from_a_coloured_log_line() {
        let line = "2025-01-01T00:00:00Z \u{1b}[32mINFO\u{1b}[0m starknet_devnet: Starknet Devnet listening on 127.0.0.1:45123";
        assert_eq!(listening_port(line), Some(45123));
        assert_eq!(
            listening_port("\u{1b}[1mStarknet Devnet listening on 127.0.0.1:5050\u{1b}[0m"),
            Some(5050)
        );
        assert_eq!(listening_port("Predeployed FeeToken"), None);
        assert_eq!(listening_port("listening on nowhere"), None);
    }

    #[test]
    fn strips_ansi_sequences() {
        assert_eq!(strip_ansi("\u{1b}[2;32mok\u{1b}[0m done"), "ok done");
    }

    #[test]
    fn embedded_classes_compile_to_a_blake2_compiled_class_hash() {
        let classes = ContractClasses::embedded();
        let h = compiled_class_hash("sage_token", &classes.sage_token).expect("compiles");
        assert_ne!(h, Felt::ZERO);
        assert_eq!(
            h,
            compiled_class_hash("sage_token", &classes.sage_token).expect("again"),
            "deterministic"
        );
        assert!(compiled_class_hash("x", "{}").is_err());
    }
}
