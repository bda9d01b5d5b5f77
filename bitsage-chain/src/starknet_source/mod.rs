//! [`StarknetChainSource`]: stake, rewards, reputation, balances and totals read from our
//! contracts over Starknet JSON-RPC (`starknet` 0.17).
//!
//! # How a read works
//! 1. **Cache.** Answers are cached per (view, wallet) for [`StarknetConfig::cache_ttl`]
//!    (default 10 s, at most [`MAX_CACHE_TTL`] = 15 s). A cached answer keeps the block and
//!    the time it was read ([`Observed::at`]), so its age is honest. Concurrent misses for one
//!    key make a single call; `stake` and `rewards` share one `get_stake` call.
//! 2. **Pinned block.** A miss asks for the head (`starknet_blockHashAndNumber`) and then makes
//!    the contract call *at that block hash*, so the value and the block it is reported with
//!    belong together even while blocks are being produced (the two requests are dependent, so
//!    they are made one after the other).
//! 3. **Retries and budget.** A failed attempt is retried (default 2 retries, exponential
//!    backoff with jitter) when retrying can help (connection errors, a block that vanished in
//!    a reorg, rate limits); the whole read, retries included, ends within
//!    [`StarknetConfig::call_timeout`] (default 3 s).
//! 4. **Circuit breaker.** [`StarknetConfig::breaker_failures`] consecutive reads that could not
//!    reach the endpoint (default 5) open the breaker: reads are refused at once for
//!    [`StarknetConfig::breaker_cooldown`] (default 10 s), then one trial read is let through
//!    (half-open); its success closes the breaker. See [`StarknetChainSource::breaker_state`].
//! 5. **Stale fallback.** When a read fails (timeout, endpoint unreachable, breaker open,
//!    malformed answer) and a cached answer not older than [`StarknetConfig::stale_limit`]
//!    (default 5 min) exists, that answer is served **with its original read time and block**
//!    — the caller sees how old it is from `Observed::at.read_at`. Otherwise the read fails with
//!    [`Error::Unavailable`] (`source_name` `"starknet"`) and a reason written for operators
//!    (e.g. "RPC did not answer within 3 s", "circuit open after 5 failures; retrying in 7 s"),
//!    or [`Error::Backend`] when the chain answered but the answer is unusable (contract not
//!    found, malformed felts). Provider error text — which can contain the RPC URL and its API
//!    key — goes to `tracing` logs only, never into a returned error.
//!
//! Decoding is typed and strict ([`decode`]): a `u256` limb at or above 2^128, an integer out
//! of range, a bool other than 0/1, an unknown enum variant or a wrong answer length is a
//! malformed answer, never a panic.

mod breaker;
mod cache;
pub mod decode;
mod wallet;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bitsage_core::chain::{
    ChainReadAt, NetworkTotals, Observed, ReputationInfo, RewardsInfo, StakeInfo,
};
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, Error, Result, TokenAmount, WalletAddress};
use serde::{Deserialize, Serialize};
use starknet::core::types::{BlockId, Felt, FunctionCall, StarknetError};
use starknet::macros::selector;
use starknet::providers::jsonrpc::{HttpTransport, HttpTransportError, JsonRpcClientError};
use starknet::providers::{Provider, ProviderError};
use url::Url;

use crate::rpc_timing::{timed_client, TimedClient};
pub use breaker::BreakerState;
use breaker::{Admission, Breaker, Permit, Refused};
use cache::Cache;
use decode::{felt_hex, DecodeError};
pub use wallet::{
    PinnedKeyWalletVerifier, StarknetWalletVerifier, StoredKeyVerifier, LOCAL_CHAIN_ID,
};

/// The source name in errors and logs.
pub const SOURCE_NAME: &str = "starknet";
/// The longest allowed cache TTL: chain values are never served more than 15 s stale while the
/// chain answers.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(15);
/// Default cache TTL.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default limit on the age of a cached answer served while the chain cannot answer.
pub const DEFAULT_STALE_LIMIT: Duration = Duration::from_secs(300);
/// Default budget of one read, retries included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Default number of retries after a failed attempt.
pub const DEFAULT_RETRIES: u32 = 2;
/// Default delay before the first retry (doubled each retry, with jitter).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Default number of consecutive failed reads that open the circuit breaker.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default time the breaker stays open before a trial read.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(10);
/// Most cached answers kept per view.
const MAX_CACHE_ENTRIES: usize = 10_000;
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- configuration

/// The addresses of the contracts a [`StarknetChainSource`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContractAddresses {
    /// The SAGE ERC20 (`balance_of`).
    pub token: WalletAddress,
    /// `ProverStaking` (`get_stake`, `total_staked`).
    pub staking: WalletAddress,
    /// `ReputationManager` (`get_reputation`).
    pub reputation: WalletAddress,
}

impl ContractAddresses {
    /// Parses the three addresses from `0x` hex, saying which one is malformed.
    pub fn parse(token: &str, staking: &str, reputation: &str) -> Result<Self> {
        fn one(what: &'static str, s: &str) -> Result<WalletAddress> {
            WalletAddress::parse(s.trim()).map_err(|e| match e {
                Error::Invalid { reason, .. } => Error::invalid(what, reason),
                other => other,
            })
        }
        Ok(Self {
            token: one("token contract address", token)?,
            staking: one("staking contract address", staking)?,
            reputation: one("reputation contract address", reputation)?,
        })
    }
}

/// How a [`StarknetChainSource`] reaches the chain: endpoint, contracts, cache, retries,
/// breaker. Start from [`StarknetConfig::new`] (the defaults) and adjust with the `with_*`
/// methods; [`StarknetChainSource::new`] validates it.
#[derive(Clone)]
pub struct StarknetConfig {
    /// The JSON-RPC endpoint (`http://127.0.0.1:5050/rpc`, a provider URL, ...).
    pub rpc_url: Url,
    /// The contracts to read.
    pub contracts: ContractAddresses,
    /// How long an answer is served from the cache without a call (≤ [`MAX_CACHE_TTL`];
    /// zero disables fresh hits but keeps the stale fallback).
    pub cache_ttl: Duration,
    /// The oldest cached answer served (with its age) when the chain cannot answer; at least
    /// the TTL.
    pub stale_limit: Duration,
    /// The budget of one read, retries and backoff included (> 0).
    pub call_timeout: Duration,
    /// Retries after a failed attempt, when retrying can help.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further retry (capped at 2 s), with
    /// jitter.
    pub retry_backoff: Duration,
    /// Consecutive failed reads that open the circuit breaker (≥ 1).
    pub breaker_failures: u32,
    /// How long the breaker stays open before one trial read.
    pub breaker_cooldown: Duration,
}

impl std::fmt::Debug for StarknetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StarknetConfig")
            .field("rpc_url", &redacted_url(&self.rpc_url))
            .field("contracts", &self.contracts)
            .field("cache_ttl", &self.cache_ttl)
            .field("stale_limit", &self.stale_limit)
            .field("call_timeout", &self.call_timeout)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .finish()
    }
}

impl StarknetConfig {
    /// A configuration with the defaults, for `rpc_url` (an `http`/`https` URL) and `contracts`.
    pub fn new(rpc_url: &str, contracts: ContractAddresses) -> Result<Self> {
        let rpc_url = Url::parse(rpc_url.trim())
            .map_err(|e| Error::invalid("starknet rpc url", e.to_string()))?;
        if !matches!(rpc_url.scheme(), "http" | "https") {
            return Err(Error::invalid(
                "starknet rpc url",
                format!("scheme must be http or https, not {}", rpc_url.scheme()),
            ));
        }
        Ok(Self {
            rpc_url,
            contracts,
            cache_ttl: DEFAULT_CACHE_TTL,
            stale_limit: DEFAULT_STALE_LIMIT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            retries: DEFAULT_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
        })
    }

    /// Sets [`StarknetConfig::cache_ttl`].
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Sets [`StarknetConfig::stale_limit`].
    pub fn with_stale_limit(mut self, limit: Duration) -> Self {
        self.stale_limit = limit;
        self
    }

    /// Sets [`StarknetConfig::call_timeout`].
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets [`StarknetConfig::retries`] and [`StarknetConfig::retry_backoff`].
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self
    }

    /// Sets [`StarknetConfig::breaker_failures`] and [`StarknetConfig::breaker_cooldown`].
    pub fn with_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// Checks the limits: TTL ≤ 15 s, stale limit ≥ TTL, a non-zero call timeout, at least one
    /// failure to open the breaker.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("starknet config", reason));
        if self.cache_ttl > MAX_CACHE_TTL {
            return bad(format!(
                "cache_ttl {} exceeds the {} staleness limit",
                human(self.cache_ttl),
                human(MAX_CACHE_TTL)
            ));
        }
        if self.stale_limit < self.cache_ttl {
            return bad(format!(
                "stale_limit {} is shorter than cache_ttl {}",
                human(self.stale_limit),
                human(self.cache_ttl)
            ));
        }
        if self.call_timeout.is_zero() {
            return bad("call_timeout must be above zero".into());
        }
        if self.breaker_failures == 0 {
            return bad("breaker_failures must be at least 1".into());
        }
        Ok(())
    }
}

/// `scheme://host:port` of a URL: its path and query may carry an API key.
fn redacted_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

/// `text` with every URL in it cut to its scheme, host and port (an RPC provider's URL often
/// carries an API key in its path, query or user part; error texts quote it).
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: the letters right before "://".
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..scheme_start]);
        match Url::parse(&rest[scheme_start..end]) {
            Ok(u) => out.push_str(&redacted_url(&u)),
            Err(_) => out.push_str("<url>"),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A duration for people: `3 s`, `250 ms`.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A wait for people, rounded up to whole seconds above one second: `7 s`, `400 ms`.
fn human_wait(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

// ---------------------------------------------------------------- errors of one read

/// Why a read failed. The texts are ours (safe to return); provider detail is logged where the
/// error is classified.
#[derive(Debug, Clone, thiserror::Error)]
enum ReadError {
    #[error("RPC did not answer within {}", human(*.0))]
    Timeout(Duration),
    #[error("cannot reach the Starknet RPC endpoint")]
    Unreachable,
    #[error("the Starknet RPC endpoint is rate-limiting requests")]
    RateLimited,
    #[error("the Starknet RPC endpoint gave an unreadable answer")]
    BadResponse,
    #[error("circuit open after {failures} failures; retrying in {retry_in}")]
    Open { failures: u32, retry_in: String },
    #[error("circuit half-open: a trial call is in progress")]
    TrialInFlight,
    #[error("{function}: {reason}")]
    Rejected {
        function: &'static str,
        reason: String,
        retryable: bool,
    },
    #[error(transparent)]
    Decode(DecodeError),
}

impl ReadError {
    fn open(refused: Refused) -> Self {
        if refused.retry_in.is_zero() {
            ReadError::TrialInFlight
        } else {
            ReadError::Open {
                failures: refused.failures,
                retry_in: human_wait(refused.retry_in),
            }
        }
    }

    /// The endpoint could not be reached (counts toward opening the breaker).
    fn is_outage(&self) -> bool {
        matches!(
            self,
            ReadError::Timeout(_)
                | ReadError::Unreachable
                | ReadError::RateLimited
                | ReadError::BadResponse
        )
    }

    fn is_retryable(&self) -> bool {
        match self {
            ReadError::Unreachable | ReadError::RateLimited | ReadError::BadResponse => true,
            ReadError::Rejected { retryable, .. } => *retryable,
            _ => false,
        }
    }

    fn into_error(self) -> Error {
        match self {
            ReadError::Rejected { .. } | ReadError::Decode(_) => Error::backend(SOURCE_NAME, self),
            other => Error::Unavailable {
                source_name: SOURCE_NAME.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// Classifies a provider error, logging its text (which never leaves this function).
fn classify(function: &'static str, err: &ProviderError, timeout: Duration) -> ReadError {
    tracing::warn!(source = SOURCE_NAME, function, error = %scrub_urls(&err.to_string()), "starknet RPC request failed");
    let rejected = |reason: &str, retryable: bool| ReadError::Rejected {
        function,
        reason: reason.to_string(),
        retryable,
    };
    match err {
        ProviderError::StarknetError(e) => match e {
            StarknetError::BlockNotFound => rejected("block not found (the chain moved)", true),
            StarknetError::ContractNotFound => {
                rejected("contract not found (check the configured address)", false)
            }
            StarknetError::EntrypointNotFound => {
                rejected("entry point not found (is this the right contract?)", false)
            }
            StarknetError::ContractError(_) => rejected("the contract call failed", false),
            _ => rejected("the node refused the call", false),
        },
        ProviderError::RateLimited => ReadError::RateLimited,
        ProviderError::ArrayLengthMismatch => ReadError::BadResponse,
        ProviderError::Other(inner) => {
            match inner
                .as_any()
                .downcast_ref::<JsonRpcClientError<HttpTransportError>>()
            {
                Some(JsonRpcClientError::TransportError(HttpTransportError::Reqwest(e)))
                    if e.is_timeout() =>
                {
                    ReadError::Timeout(timeout)
                }
                Some(JsonRpcClientError::TransportError(HttpTransportError::Reqwest(_))) => {
                    ReadError::Unreachable
                }
                Some(JsonRpcClientError::JsonRpcError(e)) => rejected(
                    &format!("the node answered with JSON-RPC error {}", e.code),
                    false,
                ),
                Some(_) => ReadError::BadResponse,
                None => ReadError::Unreachable,
            }
        }
    }
}

/// A delay before retry number `retry` (1-based): `base × 2^(retry−1)`, capped, with jitter in
/// its upper half (so concurrent clients do not retry in lockstep).
fn backoff(base: Duration, retry: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    exp / 2 + exp.mul_f64(jitter() / 2.0)
}

/// A number in `[0, 1)`, different on every call (not for cryptography).
fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

// ---------------------------------------------------------------- the source

/// One contract view call.
#[derive(Debug, Clone)]
struct ContractCall {
    function: &'static str,
    contract: Felt,
    selector: Felt,
    calldata: Vec<Felt>,
}

type ViewCache<K, V> = Mutex<Cache<K, V, ReadError>>;

fn lock<K, V>(cache: &ViewCache<K, V>) -> std::sync::MutexGuard<'_, Cache<K, V, ReadError>> {
    // The cache holds plain values: a panic elsewhere cannot leave it half-written.
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_cache<K: Eq + std::hash::Hash + Clone, V: Clone>(
    config: &StarknetConfig,
) -> ViewCache<K, V> {
    Mutex::new(Cache::new(
        config.cache_ttl,
        config.stale_limit,
        MAX_CACHE_ENTRIES,
    ))
}

fn felt_of(address: &WalletAddress) -> Felt {
    Felt::from_bytes_be(address.as_bytes())
}

/// Reads stake, rewards, reputation, balances and totals from our contracts over Starknet
/// JSON-RPC, with a bounded-staleness cache, retries, a circuit breaker and a per-read budget
/// (see the [module documentation](self) for the exact rules).
pub struct StarknetChainSource {
    config: StarknetConfig,
    provider: TimedClient,
    breaker: Breaker,
    stakes: ViewCache<WalletAddress, StakeInfo>,
    reputations: ViewCache<WalletAddress, ReputationInfo>,
    balances: ViewCache<WalletAddress, TokenAmount>,
    totals: ViewCache<(), NetworkTotals>,
    min_stakes: ViewCache<GpuTier, TokenAmount>,
    eligibility: ViewCache<WalletAddress, bool>,
    apy: ViewCache<(), u64>,
}

impl std::fmt::Debug for StarknetChainSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StarknetChainSource")
            .field("config", &self.config)
            .field("breaker", &self.breaker_state())
            .finish_non_exhaustive()
    }
}

impl StarknetChainSource {
    /// A source over `config` (validated). Makes no call: an unreachable endpoint shows up as
    /// `Unavailable` on the first read.
    pub fn new(config: StarknetConfig) -> Result<Self> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.call_timeout)
            .timeout(config.call_timeout)
            .build()
            .map_err(|e| Error::backend(SOURCE_NAME, e))?;
        let provider = timed_client(HttpTransport::new_with_client(config.rpc_url.clone(), http));
        Ok(Self {
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            stakes: new_cache(&config),
            reputations: new_cache(&config),
            balances: new_cache(&config),
            totals: new_cache(&config),
            min_stakes: new_cache(&config),
            eligibility: new_cache(&config),
            apy: new_cache(&config),
            provider,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StarknetConfig {
        &self.config
    }

    /// The circuit breaker's state now (for health checks and tests).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    /// One attempt: the head, then the call at the head's hash, decoded.
    async fn read_once<V>(
        &self,
        call: &ContractCall,
        decode: fn(&[Felt]) -> Result<V, DecodeError>,
    ) -> Result<Observed<V>, ReadError> {
        let head =
            self.provider.block_hash_and_number().await.map_err(|e| {
                classify("starknet_blockHashAndNumber", &e, self.config.call_timeout)
            })?;
        let read_at = bitsage_core::time::now();
        let request = FunctionCall {
            contract_address: call.contract,
            entry_point_selector: call.selector,
            calldata: call.calldata.clone(),
        };
        let felts = self
            .provider
            .call(request, BlockId::Hash(head.block_hash))
            .await
            .map_err(|e| classify(call.function, &e, self.config.call_timeout))?;
        let value = decode(&felts).map_err(|e| {
            tracing::error!(source = SOURCE_NAME, function = call.function, block = head.block_number, error = %e, "malformed contract answer");
            ReadError::Decode(e)
        })?;
        Ok(Observed {
            value,
            at: ChainReadAt {
                block_number: head.block_number,
                block_hash: Some(felt_hex(&head.block_hash)),
                read_at,
            },
        })
    }

    /// Attempts (with retries) under the breaker, until `deadline`.
    async fn fetch<V>(
        &self,
        call: &ContractCall,
        decode: fn(&[Felt]) -> Result<V, DecodeError>,
        deadline: Instant,
    ) -> Result<Observed<V>, ReadError> {
        let timeout = || ReadError::Timeout(self.config.call_timeout);
        if Instant::now() >= deadline {
            return Err(timeout());
        }
        let permit = Permit::acquire(&self.breaker, Instant::now()).map_err(ReadError::open)?;
        let attempts = match permit.admission() {
            Admission::Trial => 1,
            Admission::Normal => 1 + self.config.retries,
        };
        let work = async {
            let mut attempt = 0;
            loop {
                match self.read_once(call, decode).await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        attempt += 1;
                        if attempt >= attempts || !e.is_retryable() {
                            return Err(e);
                        }
                        let delay = backoff(self.config.retry_backoff, attempt);
                        if Instant::now() + delay >= deadline {
                            return Err(e);
                        }
                        tracing::debug!(
                            source = SOURCE_NAME,
                            function = call.function,
                            attempt,
                            delay_ms = delay.as_millis() as u64,
                            "retrying"
                        );
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        };
        let result = match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(r) => r,
            Err(_) => Err(timeout()),
        };
        match &result {
            Err(e) if e.is_outage() => permit.failure(Instant::now()),
            _ => permit.success(),
        }
        result
    }

    /// A read through `cache`: fresh hit, or one call for all concurrent callers, or a stale
    /// answer with its age, or the error.
    async fn read<K, V>(
        &self,
        cache: &ViewCache<K, V>,
        key: K,
        call: ContractCall,
        decode: fn(&[Felt]) -> Result<V, DecodeError>,
    ) -> Result<Observed<V>>
    where
        K: Eq + std::hash::Hash + Clone + std::fmt::Debug + Send + Sync,
        V: Clone + Send + Sync,
    {
        let start = Instant::now();
        let deadline = start + self.config.call_timeout;
        if let Some(hit) = lock(cache).fresh(&key, start) {
            return Ok(hit);
        }
        let key_lock = lock(cache).lock_for(&key);
        let outcome = match tokio::time::timeout_at(deadline.into(), key_lock.lock()).await {
            // Another read of this key is still out past our budget.
            Err(_) => Err(ReadError::Timeout(self.config.call_timeout)),
            Ok(_guard) => {
                let earlier = {
                    let c = lock(cache);
                    match c.fresh(&key, Instant::now()) {
                        Some(hit) => Some(Ok(hit)),
                        // The read we waited for failed: do not repeat it at once.
                        None => c.failure_since(&key, start).map(Err),
                    }
                };
                match earlier {
                    Some(r) => r,
                    None => {
                        let r = self.fetch(&call, decode, deadline).await;
                        let mut c = lock(cache);
                        match &r {
                            Ok(v) => c.insert(key.clone(), v.clone(), Instant::now()),
                            Err(e) => c.record_failure(key.clone(), e.clone(), Instant::now()),
                        }
                        r
                    }
                }
            }
        };
        lock(cache).release_lock(&key, &key_lock);
        match outcome {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Some((stale, age)) = lock(cache).stale(&key, Instant::now()) {
                    tracing::info!(
                        source = SOURCE_NAME,
                        function = call.function,
                        key = ?key,
                        age_ms = age.as_millis() as u64,
                        block = stale.at.block_number,
                        reason = %e,
                        "chain read failed: serving the cached answer with its age"
                    );
                    return Ok(stale);
                }
                Err(e.into_error())
            }
        }
    }

    fn stake_call(&self, wallet: &WalletAddress) -> ContractCall {
        ContractCall {
            function: "get_stake",
            contract: felt_of(&self.config.contracts.staking),
            selector: selector!("get_stake"),
            calldata: vec![felt_of(wallet)],
        }
    }
}

#[async_trait]
impl ChainSource for StarknetChainSource {
    fn name(&self) -> &'static str {
        SOURCE_NAME
    }

    #[tracing::instrument(name = "chain.stake", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn stake(&self, wallet: &WalletAddress) -> Result<Observed<StakeInfo>> {
        self.read(
            &self.stakes,
            *wallet,
            self.stake_call(wallet),
            decode::decode_stake,
        )
        .await
    }

    /// From the same `get_stake` answer (and cache entry) as [`ChainSource::stake`].
    #[tracing::instrument(name = "chain.rewards", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn rewards(&self, wallet: &WalletAddress) -> Result<Observed<RewardsInfo>> {
        let stake = self.stake(wallet).await?;
        Ok(Observed {
            value: RewardsInfo {
                pending: stake.value.pending_rewards,
                last_claim_at: stake.value.last_claim_at,
            },
            at: stake.at,
        })
    }

    #[tracing::instrument(name = "chain.reputation", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn reputation(&self, wallet: &WalletAddress) -> Result<Observed<ReputationInfo>> {
        let call = ContractCall {
            function: "get_reputation",
            contract: felt_of(&self.config.contracts.reputation),
            selector: selector!("get_reputation"),
            calldata: vec![felt_of(wallet)],
        };
        self.read(&self.reputations, *wallet, call, decode::decode_reputation)
            .await
    }

    #[tracing::instrument(name = "chain.token_balance", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn token_balance(&self, wallet: &WalletAddress) -> Result<Observed<TokenAmount>> {
        let call = ContractCall {
            function: "balance_of",
            contract: felt_of(&self.config.contracts.token),
            selector: selector!("balance_of"),
            calldata: vec![felt_of(wallet)],
        };
        self.read(&self.balances, *wallet, call, decode::decode_balance)
            .await
    }

    #[tracing::instrument(name = "chain.min_stake", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn min_stake(&self, tier: GpuTier) -> Result<Observed<TokenAmount>> {
        let call = ContractCall {
            function: "get_min_stake",
            contract: felt_of(&self.config.contracts.staking),
            selector: selector!("get_min_stake"),
            // A unit enum variant is serialised as its index.
            calldata: vec![Felt::from(tier.index())],
        };
        self.read(&self.min_stakes, tier, call, decode::decode_min_stake)
            .await
    }

    #[tracing::instrument(name = "chain.is_eligible", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn is_eligible(&self, wallet: &WalletAddress) -> Result<Observed<bool>> {
        let call = ContractCall {
            function: "is_eligible",
            contract: felt_of(&self.config.contracts.staking),
            selector: selector!("is_eligible"),
            calldata: vec![felt_of(wallet)],
        };
        self.read(&self.eligibility, *wallet, call, decode::decode_eligible)
            .await
    }

    #[tracing::instrument(name = "chain.apy_bps", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn apy_bps(&self) -> Result<Observed<u64>> {
        let call = ContractCall {
            function: "apy_bps",
            contract: felt_of(&self.config.contracts.staking),
            selector: selector!("apy_bps"),
            calldata: vec![],
        };
        self.read(&self.apy, (), call, decode::decode_apy_bps).await
    }

    #[tracing::instrument(name = "chain.totals", level = "debug", skip_all, fields(rpc.system = "starknet"))]
    async fn totals(&self) -> Result<Observed<NetworkTotals>> {
        let call = ContractCall {
            function: "total_staked",
            contract: felt_of(&self.config.contracts.staking),
            selector: selector!("total_staked"),
            calldata: vec![],
        };
        self.read(&self.totals, (), call, decode::decode_totals)
            .await
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod scrub_tests {
    use super::scrub_urls;

    #[test]
    fn urls_in_error_texts_lose_their_secrets() {
        let text = "error sending request for url (https://user:pw@rpc.example.com:8443/v3/SECRETKEY?key=abc): timed out";
        let scrubbed = scrub_urls(text);
        assert_eq!(
            scrubbed,
            "error sending request for url (https://rpc.example.com:8443/…): timed out"
        );
        assert_eq!(scrub_urls("no url here"), "no url here");
    }
}
