//! `StarknetChainSource` against a scripted JSON-RPC server on loopback: decoding, the cache,
//! single flight, the stale fallback, timeouts and the breaker — no devnet needed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// How the fake endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers.
    Up,
    /// Closes every connection without answering.
    Down,
    /// Reads the request and never answers.
    Hang,
}

#[derive(Debug)]
struct FakeState {
    mode: Mode,
    block: u64,
    /// `starknet_call` answers by entry point selector (hex).
    answers: HashMap<Felt, Vec<Felt>>,
}

/// A scripted Starknet JSON-RPC endpoint.
#[derive(Clone)]
struct FakeRpc {
    state: Arc<StdMutex<FakeState>>,
    calls: Arc<AtomicU64>,
    heads: Arc<AtomicU64>,
    url: String,
}

impl FakeRpc {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let rpc = FakeRpc {
            state: Arc::new(StdMutex::new(FakeState {
                mode: Mode::Up,
                block: 10,
                answers: HashMap::new(),
            })),
            calls: Arc::new(AtomicU64::new(0)),
            heads: Arc::new(AtomicU64::new(0)),
            url: format!("http://{addr}/rpc"),
        };
        let server = rpc.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        rpc
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("state").mode = mode;
    }

    fn answer(&self, function: &str, felts: Vec<Felt>) {
        let sel = starknet::core::utils::get_selector_from_name(function).expect("selector");
        self.state.lock().expect("state").answers.insert(sel, felts);
    }

    fn next_block(&self) {
        self.state.lock().expect("state").block += 1;
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn serve(&self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        loop {
            // One request: headers, then Content-Length bytes of body.
            let header_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let headers = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
            let len: usize = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < header_end + len {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body: Value =
                serde_json::from_slice(&buf[header_end..header_end + len]).unwrap_or(Value::Null);
            buf.drain(..header_end + len);
            let mode = self.state.lock().expect("state").mode;
            match mode {
                Mode::Down => return,
                Mode::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                Mode::Up => {}
            }
            let reply = self.reply(&body).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn reply(&self, body: &Value) -> Value {
        let id = body.get("id").cloned().unwrap_or(json!(1));
        let state = self.state.lock().expect("state");
        let result = match body.get("method").and_then(Value::as_str) {
            Some("starknet_blockHashAndNumber") => {
                self.heads.fetch_add(1, Ordering::SeqCst);
                json!({
                    "block_hash": format!("{:#x}", 0xb000 + state.block),
                    "block_number": state.block,
                })
            }
            Some("starknet_call") => {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let params = body.get("params");
                let sel = params
                    .and_then(|p| p.get("request").or_else(|| p.get(0)))
                    .and_then(|r| r.get("entry_point_selector"))
                    .and_then(Value::as_str)
                    .and_then(|s| Felt::from_hex(s).ok());
                match sel.and_then(|s| state.answers.get(&s)) {
                    Some(felts) => {
                        json!(felts.iter().map(|f| format!("{f:#x}")).collect::<Vec<_>>())
                    }
                    None => {
                        return json!({"jsonrpc": "2.0", "id": id,
                            "error": {"code": 21, "message": "Requested entrypoint does not exist in the contract"}})
                    }
                }
            }
            _ => {
                return json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32601, "message": "method not found"}})
            }
        };
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    }
}

fn f(v: u128) -> Felt {
    Felt::from(v)
}

fn stake_felts(amount: u128, pending: u128) -> Vec<Felt> {
    vec![
        f(amount),
        f(0),
        f(0),
        f(0),
        f(1_700_000_000),
        f(0),
        f(2),
        f(1),
        f(0),
        f(0),
        f(0),
        f(pending),
        f(0),
    ]
}

fn wallet(s: &str) -> WalletAddress {
    WalletAddress::parse(s).expect("wallet")
}

fn addresses() -> ContractAddresses {
    ContractAddresses::parse("0x70c", "0x5a7", "0x4e9").expect("addresses")
}

async fn fake_with_answers() -> FakeRpc {
    let rpc = FakeRpc::start().await;
    rpc.answer("get_stake", stake_felts(1_000, 7));
    rpc.answer(
        "get_reputation",
        vec![f(510), f(3), f(0), f(1), f(1), f(0), f(0), f(0)],
    );
    rpc.answer("balance_of", vec![f(99), f(0)]);
    rpc.answer("total_staked", vec![f(5_000), f(0)]);
    rpc
}

fn config(rpc: &FakeRpc) -> StarknetConfig {
    StarknetConfig::new(&rpc.url, addresses())
        .expect("config")
        .with_call_timeout(Duration::from_millis(500))
        .with_retries(1, Duration::from_millis(10))
        .with_breaker(3, Duration::from_millis(400))
}

fn unavailable_reason<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Unavailable {
            source_name,
            reason,
        }) => {
            assert_eq!(source_name, "starknet");
            reason
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn reads_decode_and_carry_their_block() {
    let rpc = fake_with_answers().await;
    let src = StarknetChainSource::new(config(&rpc)).expect("source");
    assert_eq!(src.name(), "starknet");
    let w = wallet("0x123");
    let stake = src.stake(&w).await.expect("stake");
    assert_eq!(stake.value.amount, TokenAmount::from(1_000u64));
    assert_eq!(stake.value.gpu_tier, bitsage_core::gpu::GpuTier::DataCenter);
    assert!(stake.value.is_active);
    assert_eq!(stake.at.block_number, 10);
    assert_eq!(
        stake.at.block_hash.as_deref(),
        Some(felt_hex(&f(0xb00a)).as_str())
    );
    let rep = src.reputation(&w).await.expect("reputation");
    assert_eq!((rep.value.score, rep.value.level), (510, 3));
    let bal = src.token_balance(&w).await.expect("balance");
    assert_eq!(bal.value, TokenAmount::from(99u64));
    let totals = src.totals().await.expect("totals");
    assert_eq!(totals.value.total_staked, TokenAmount::from(5_000u64));
}

#[tokio::test]
async fn stake_and_rewards_share_one_get_stake_call() {
    let rpc = fake_with_answers().await;
    let src = StarknetChainSource::new(config(&rpc)).expect("source");
    let w = wallet("0x123");
    let (stake, rewards) = futures::join!(src.stake(&w), src.rewards(&w));
    let (stake, rewards) = (stake.expect("stake"), rewards.expect("rewards"));
    assert_eq!(rpc.calls(), 1, "one get_stake call for both answers");
    assert_eq!(rewards.value.pending, TokenAmount::from(7u64));
    assert_eq!(rewards.at, stake.at);
}

#[tokio::test]
async fn cache_hits_keep_their_read_time_and_expire_after_the_ttl() {
    let rpc = fake_with_answers().await;
    let src = StarknetChainSource::new(config(&rpc).with_cache_ttl(Duration::from_millis(300)))
        .expect("source");
    let w = wallet("0x123");
    let first = src.stake(&w).await.expect("first");
    rpc.next_block();
    let second = src.stake(&w).await.expect("second");
    assert_eq!(rpc.calls(), 1, "served from the cache");
    assert_eq!(
        second.at, first.at,
        "a cached answer keeps its block and read time"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let third = src.stake(&w).await.expect("third");
    assert_eq!(rpc.calls(), 2, "expired after the TTL");
    assert_eq!(third.at.block_number, 11);
    assert!(third.at.read_at > first.at.read_at);
}

#[tokio::test]
async fn malformed_answers_are_errors_not_panics() {
    let rpc = fake_with_answers().await;
    let src = StarknetChainSource::new(config(&rpc)).expect("source");
    let w = wallet("0x123");
    let mut bad = stake_felts(1, 0);
    bad[0] = Felt::MAX;
    rpc.answer("get_stake", bad);
    match src.stake(&w).await {
        Err(Error::Backend { backend, source }) => {
            assert_eq!(backend, "starknet");
            assert!(source.to_string().contains("amount.low"), "{source}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
    rpc.answer("get_reputation", vec![f(500)]);
    assert!(matches!(
        src.reputation(&w).await,
        Err(Error::Backend { .. })
    ));
    assert_eq!(
        src.breaker_state(),
        BreakerState::Closed,
        "the endpoint answered: not an outage"
    );
}

#[tokio::test]
async fn unknown_contract_entry_point_is_a_backend_error() {
    let rpc = FakeRpc::start().await;
    let src = StarknetChainSource::new(config(&rpc)).expect("source");
    match src.totals().await {
        Err(Error::Backend { source, .. }) => {
            assert!(
                source.to_string().contains("entry point not found"),
                "{source}"
            )
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn outage_serves_stale_with_its_age_else_unavailable_with_a_safe_reason() {
    let rpc = fake_with_answers().await;
    let src =
        StarknetChainSource::new(config(&rpc).with_cache_ttl(Duration::ZERO)).expect("source");
    let w = wallet("0x123");
    let fresh = src.stake(&w).await.expect("fresh");
    rpc.set_mode(Mode::Down);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stale = src.stake(&w).await.expect("stale answer");
    assert_eq!(
        stale.at, fresh.at,
        "served with its original read time and block"
    );
    assert!(stale.age(bitsage_core::time::now()) >= Duration::from_millis(20));
    let reason = unavailable_reason(src.reputation(&w).await);
    assert_eq!(reason, "cannot reach the Starknet RPC endpoint");
    assert!(!reason.contains("127.0.0.1"), "no provider text: {reason}");
}

#[tokio::test]
async fn a_hung_endpoint_is_unavailable_within_the_call_timeout() {
    let rpc = fake_with_answers().await;
    rpc.set_mode(Mode::Hang);
    let src = StarknetChainSource::new(config(&rpc).with_call_timeout(Duration::from_millis(300)))
        .expect("source");
    let reason = unavailable_reason(src.stake(&wallet("0x123")).await);
    assert_eq!(reason, "RPC did not answer within 300 ms");
}

#[tokio::test]
async fn breaker_opens_after_consecutive_failures_and_a_trial_closes_it() {
    let rpc = fake_with_answers().await;
    let src = StarknetChainSource::new(config(&rpc)).expect("source");
    rpc.set_mode(Mode::Down);
    for i in 0..3 {
        assert_eq!(
            src.breaker_state(),
            BreakerState::Closed,
            "before failure {i}"
        );
        let reason = unavailable_reason(src.totals().await);
        assert_eq!(reason, "cannot reach the Starknet RPC endpoint");
    }
    assert_eq!(src.breaker_state(), BreakerState::Open);
    let reason = unavailable_reason(src.stake(&wallet("0x1")).await);
    assert!(
        reason.starts_with("circuit open after 3 failures; retrying in "),
        "{reason}"
    );
    // The endpoint comes back; after the cooldown one trial closes the breaker.
    rpc.set_mode(Mode::Up);
    let calls = rpc.calls();
    assert!(src.totals().await.is_err(), "still open: no call made");
    assert_eq!(rpc.calls(), calls);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(src.breaker_state(), BreakerState::HalfOpen);
    let totals = src.totals().await.expect("recovered");
    assert_eq!(totals.value.total_staked, TokenAmount::from(5_000u64));
    assert_eq!(src.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_failed_trial_reopens_the_breaker() {
    let rpc = fake_with_answers().await;
    let src = StarknetChainSource::new(config(&rpc).with_breaker(1, Duration::from_millis(200)))
        .expect("source");
    rpc.set_mode(Mode::Down);
    assert!(src.totals().await.is_err());
    assert_eq!(src.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(src.breaker_state(), BreakerState::HalfOpen);
    let reason = unavailable_reason(src.totals().await);
    assert_eq!(
        reason, "cannot reach the Starknet RPC endpoint",
        "the trial ran"
    );
    assert_eq!(src.breaker_state(), BreakerState::Open);
}

#[test]
fn config_refuses_a_ttl_above_15_s_and_other_nonsense() {
    let base = StarknetConfig::new("http://127.0.0.1:5050/rpc", addresses()).expect("config");
    assert_eq!(base.cache_ttl, Duration::from_secs(10));
    assert_eq!(base.call_timeout, Duration::from_secs(3));
    assert_eq!(base.retries, 2);
    assert_eq!(base.breaker_failures, 5);
    assert_eq!(base.breaker_cooldown, Duration::from_secs(10));
    assert!(base.validate().is_ok());
    assert!(base
        .clone()
        .with_cache_ttl(Duration::from_secs(15))
        .validate()
        .is_ok());
    let e = StarknetChainSource::new(base.clone().with_cache_ttl(Duration::from_secs(16)))
        .expect_err("ttl 16 s");
    assert!(e.to_string().contains("15 s"), "{e}");
    assert!(base
        .clone()
        .with_stale_limit(Duration::from_secs(1))
        .validate()
        .is_err());
    assert!(base
        .clone()
        .with_call_timeout(Duration::ZERO)
        .validate()
        .is_err());
    assert!(base
        .clone()
        .with_breaker(0, Duration::from_secs(1))
        .validate()
        .is_err());
    assert!(StarknetConfig::new("not a url", addresses()).is_err());
    assert!(StarknetConfig::new("ftp://example.com/rpc", addresses()).is_err());
}

#[test]
fn contract_addresses_say_which_one_is_malformed() {
    let e = ContractAddresses::parse("0x1", "0xzz", "0x3").expect_err("bad staking");
    assert!(e.to_string().contains("staking contract address"), "{e}");
    let e = ContractAddresses::parse("", "0x2", "0x3").expect_err("bad token");
    assert!(e.to_string().contains("token contract address"), "{e}");
    let a = ContractAddresses::parse(" 0x1 ", "0x2", "0x3").expect("valid");
    assert_eq!(a.token, wallet("0x1"));
}

#[test]
fn debug_output_hides_the_rpc_path() {
    let c =
        StarknetConfig::new("https://rpc.example.com/v0_9/SECRETKEY", addresses()).expect("config");
    let shown = format!("{c:?}");
    assert!(!shown.contains("SECRETKEY"), "{shown}");
    assert!(shown.contains("rpc.example.com"));
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let base = Duration::from_millis(100);
    for _ in 0..50 {
        let first = backoff(base, 1);
        assert!(
            first >= Duration::from_millis(50) && first <= base,
            "{first:?}"
        );
        let third = backoff(base, 3);
        assert!(
            third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
            "{third:?}"
        );
        assert!(backoff(base, 40) <= MAX_BACKOFF);
    }
}

#[test]
fn human_durations() {
    assert_eq!(human(Duration::from_secs(3)), "3 s");
    assert_eq!(human(Duration::from_millis(250)), "250 ms");
    assert_eq!(human(Duration::from_millis(1500)), "1500 ms");
    assert_eq!(human_wait(Duration::from_millis(6200)), "7 s");
    assert_eq!(human_wait(Duration::from_millis(400)), "400 ms");
}
