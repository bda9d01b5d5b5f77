//! Real processes on loopback: the `bitsage-coordinator` and `bitsage-agent` binaries, a
//! throw-away PostgreSQL database from `BITSAGE_TEST_PG_URL`, and polling helpers.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitsage_http::client::CoordinatorClient;

#[allow(unused_imports)] // not every test binary that includes this module uses both
pub(crate) use bitsage_store::testing::{pg_url_or_skip, PG_URL_VAR};

/// The wallet the test agents earn for.
pub(crate) const WALLET: &str = "0x0abc0def0123";

/// A fresh database on the server at `url`; returns its URL.
pub(crate) async fn fresh_pg_database(url: &str) -> String {
    bitsage_store::testing::create_database(url, "bitsage_e2e")
        .await
        .expect("create test database")
        .url
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed (SIGKILL) when dropped.
pub(crate) struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    /// Kills the process with SIGKILL and waits for it.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; returns its status.
    pub(crate) fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // The workspace forbids unsafe code (libc::kill is FFI): use the `kill` command.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_bitsage-coordinator"))
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// The `bitsage-agent` binary next to the coordinator's; built with cargo when missing (e.g.
/// when only this package's tests were asked for).
pub(crate) fn agent_bin() -> PathBuf {
    let path = bin_dir().join(format!("bitsage-agent{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "bitsage-agent", "--bin", "bitsage-agent"])
            .status()
            .expect("run cargo build for bitsage-agent");
        assert!(status.success(), "building bitsage-agent failed");
    }
    assert!(
        path.exists(),
        "no bitsage-agent binary at {}",
        path.display()
    );
    path
}

/// Timing settings that make lifecycle tests quick: heartbeat every second, stale after 3 s,
/// offline after 6 s, sweeps every 200 ms.
pub(crate) const FAST: &[&str] = &[
    "--heartbeat-interval-secs",
    "1",
    "--stale-after-secs",
    "3",
    "--offline-after-secs",
    "6",
    "--sweep-interval-ms",
    "200",
    "--lease-secs",
    "60",
];

/// Starts the coordinator server on `port` with its data in `data_dir` (and PostgreSQL when
/// `pg` is given).
pub(crate) fn start_coordinator(data_dir: &Path, port: u16, pg: Option<&str>) -> Proc {
    start_coordinator_with(data_dir, port, pg, &[])
}

/// [`start_coordinator`] with more arguments (e.g. `--key-file`, `--network`).
pub(crate) fn start_coordinator_with(
    data_dir: &Path,
    port: u16,
    pg: Option<&str>,
    extra: &[&str],
) -> Proc {
    fund_test_payer(data_dir, pg);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitsage-coordinator"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(FAST)
        // The deployment's admin (created at start when missing), for the test client.
        .args(["--bootstrap-admin", ADMIN.0])
        .env("BITSAGE_ADMIN_PASSWORD", ADMIN.1)
        // Limits stay on, generous enough for clients that poll every 100 ms.
        .args(["--rate-limit-scale", "20"])
        .args(extra)
        .env_remove("BITSAGE_DATABASE_URL")
        .env_remove("BITSAGE_DEPLOYMENT_KEY")
        .env_remove("BITSAGE_KEY_FILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = pg {
        cmd.arg("--database-url").arg(url);
    }
    Proc {
        child: cmd.spawn().expect("spawn bitsage-coordinator"),
        name: "coordinator",
    }
}

/// The test client's Stark private key.
pub(crate) fn payer_key() -> starknet::core::types::Felt {
    starknet::core::types::Felt::from(0xe2e_u64)
}

/// The test client's account.
pub(crate) fn payer() -> bitsage_core::WalletAddress {
    bitsage_core::WalletAddress::parse("0xc11e27").expect("payer")
}

/// Gives the test client 1,000,000 SAGE of local credit with its public key, as an operator
/// does: `bitsage-coordinator credit set`.
pub(crate) fn fund_test_payer(data_dir: &Path, pg: Option<&str>) {
    let public = starknet::signers::SigningKey::from_secret_scalar(payer_key())
        .verifying_key()
        .scalar();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitsage-coordinator"));
    cmd.args([
        "credit",
        "set",
        "--account",
        &payer().to_string(),
        "--sage",
        "1000000",
    ])
    .arg("--public-key")
    .arg(format!("{public:#x}"))
    .env_remove("BITSAGE_DATABASE_URL")
    .env("RUST_LOG", "warn");
    match pg {
        Some(url) => cmd.arg("--database-url").arg(url),
        None => cmd.arg("--data-dir").arg(data_dir),
    };
    let out = cmd.output().expect("run credit set");
    assert!(
        out.status.success(),
        "credit set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A submission of `job` paying `payment`, signed by the test client for the coordinator
/// `client` talks to (its network and payment chain id).
pub(crate) async fn submission(
    client: &bitsage_http::client::CoordinatorClient,
    job: bitsage_core::JobKind,
    payment: u128,
    max_attempts: Option<u32>,
) -> bitsage_http::api::SubmitJobRequest {
    let info = client.coordinator_info().await.expect("coordinator info");
    bitsage_chain::snip12::signed_submission(
        &payer_key(),
        payer(),
        job,
        bitsage_core::TokenAmount::from_u128(payment),
        max_attempts,
        &info.network,
        info.payment_chain_id
            .as_deref()
            .expect("the coordinator accepts submissions"),
    )
    .expect("sign")
}

/// Starts an agent for `url` with its key in `key_file`.
pub(crate) fn start_agent(url: &str, key_file: &Path) -> Proc {
    let child = Command::new(agent_bin())
        .args(["run", "--coordinator", url, "--wallet", WALLET])
        .arg("--key-file")
        .arg(key_file)
        .args(["--max-backoff-secs", "1", "--shutdown-grace-secs", "20"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn bitsage-agent");
    Proc {
        child,
        name: "agent",
    }
}

/// Polls `check` every 100 ms until it returns `Some`, failing after `limit` with `what`.
/// (A wait with a generous limit, not a timing assertion.)
pub(crate) async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The test deployment's admin (username, password).
pub(crate) const ADMIN: (&str, &str) = ("admin", "e2e admin password");

/// An access token of the test admin at `base` (`http://127.0.0.1:<port>`).
pub(crate) async fn admin_token(base: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/login", base.trim_end_matches('/')))
        .json(&serde_json::json!({ "username": ADMIN.0, "password": ADMIN.1 }))
        .send()
        .await
        .expect("login");
    assert!(r.status().is_success(), "admin login: {}", r.status());
    let v: serde_json::Value = r.json().await.expect("session");
    v["access_token"].as_str().expect("token").to_string()
}

/// `GET url` as the test admin; the JSON body.
pub(crate) async fn admin_get(url: &str) -> serde_json::Value {
    let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
    reqwest::Client::new()
        .get(url)
        .bearer_auth(admin_token(&base).await)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// A client for `http://127.0.0.1:<port>` signed in as the test admin, once `/readyz`
/// answers ok.
pub(crate) async fn ready_client(port: u16) -> CoordinatorClient {
    let client =
        CoordinatorClient::new(&format!("http://127.0.0.1:{port}")).expect("client for loopback");
    wait_for(
        "the coordinator to be ready",
        Duration::from_secs(60),
        || {
            let c = client.clone();
            async move {
                c.ready()
                    .await
                    .ok()
                    .filter(|h| h.status == bitsage_http::api::HealthStatus::Ok)
            }
        },
    )
    .await;
    let token = admin_token(&format!("http://127.0.0.1:{port}")).await;
    client.with_bearer_token(token)
}

/// Waits until every job in `ids` is completed and its receipt stored (`limit` each).
pub(crate) async fn wait_completed(
    client: &bitsage_http::client::CoordinatorClient,
    ids: &[bitsage_core::JobId],
    limit: Duration,
) {
    for id in ids {
        wait_for("a job to complete with its receipt", limit, || {
            let c = client.clone();
            let id = *id;
            async move {
                c.job(&id)
                    .await
                    .ok()
                    .filter(|j| j.status == bitsage_core::JobStatus::Completed)?;
                // The receipt (id = job id) is stored right after the job completes.
                c.receipt(&bitsage_core::ReceiptId(id.0)).await.ok()
            }
        })
        .await;
    }
}
