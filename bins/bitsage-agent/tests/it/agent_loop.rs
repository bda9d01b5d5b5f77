//! The agent against a real coordinator router (in-memory store, stwo verifier) served on a
//! local port: register → probe → job → countersigned receipt; a coordinator restart that
//! forgot the node; shutdown while proving (finish within the grace, or give the lease back).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_agent::receipt_check::{check_receipt, ReceiptFile};
use bitsage_agent::{Agent, AgentConfig, AgentError, AgentHandle, AgentReport, SHUTDOWN_REASON};
use bitsage_core::attestation::{
    Attestation, DeviceAttestation, HostAttestation, ATTESTATION_NONCE_LEN,
};
use bitsage_core::crypto::PublicKey;
use bitsage_core::gpu::{DeviceState, GpuDevice, GpuInventory, GpuSample, HostInfo};
use bitsage_core::node::HardwareReport;
use bitsage_core::proof::{ProofEnvelope, VerifiedProof};
use bitsage_core::service::CoordinatorPolicy;
use bitsage_core::GpuSource;
use bitsage_core::{JobId, WalletAddress};
use bitsage_core::{JobKind, JobSpec, JobStatus, NodeId, NodeStatus, Prover, TokenAmount};
use bitsage_gpu::{HostOnlySource, HostSource};
use bitsage_http::api::{ReceiptListQuery, RegisterRequest};
use bitsage_http::client::CoordinatorClient;
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_prover::StwoProver;
use bitsage_store::InMemoryStore;
use ed25519_dalek::SigningKey;
use tokio::sync::{oneshot, watch};

/// Generous bound for waits that involve proving (debug builds, a shared machine).
const WAIT: Duration = Duration::from_secs(180);

fn coordinator_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A coordinator on its own runtime (own thread), so stopping it closes every connection,
/// as a process exit would.
struct TestCoordinator {
    addr: SocketAddr,
    /// The test admin's access token.
    token: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestCoordinator {
    fn start(addr: &str) -> Self {
        let listener = std::net::TcpListener::bind(addr).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let policy = CoordinatorPolicy {
            heartbeat_interval: Duration::from_secs(1),
            idle_retry: Duration::from_secs(1),
            probe_chain_length: 64,
            stale_after: Duration::from_secs(30),
            ..CoordinatorPolicy::default()
        };
        let store = Arc::new(InMemoryStore::new());
        let state = AppState::new(
            store.clone(),
            Arc::new(StwoProver::new()),
            Arc::new(bitsage_store::InMemoryProofStore::new()),
            bitsage_core::deployment::DeploymentKey::new(coordinator_key(), "test")
                .expect("deployment key"),
            HttpConfig::default(),
        )
        .with_policy(policy)
        .with_payer_verifier(Arc::new(bitsage_chain::StoredKeyVerifier::new(
            store.clone(),
        )));
        // The test's own client acts as the deployment's admin.
        // (On a thread of its own: the caller may be inside a runtime.)
        let token = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(bitsage_http::test_utils::admin_token(&state))
                })
                .join()
                .expect("admin set-up")
        });
        let app = router(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                // The test client's local credit and key (as `credit set` gives them).
                use bitsage_core::PayerLedger;
                let public = starknet::signers::SigningKey::from_secret_scalar(payer_key())
                    .verifying_key()
                    .scalar();
                store
                    .set_payer(
                        &payer(),
                        Some(&bitsage_chain::snip12::hex_of_felt(&public)),
                        TokenAmount::from_u128(u128::MAX),
                        bitsage_core::time::now(),
                    )
                    .await
                    .expect("fund the test client");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        Self {
            addr,
            token,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self) -> CoordinatorClient {
        CoordinatorClient::new(&self.url())
            .expect("client")
            .with_bearer_token(self.token.clone())
    }

    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestCoordinator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wallet() -> WalletAddress {
    WalletAddress::parse("0x1234").expect("wallet")
}

fn config(url: &str, node: u8) -> AgentConfig {
    let mut c = AgentConfig::new(url, wallet(), SigningKey::from_bytes(&[node; 32]));
    c.initial_backoff = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(500);
    c.request_timeout = Duration::from_secs(30);
    c.sample_interval = Duration::from_secs(1);
    c
}

fn start_agent(
    config: AgentConfig,
    prover: Arc<dyn Prover>,
) -> (
    AgentHandle,
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<AgentReport, AgentError>>,
) {
    let gpu = Arc::new(HostOnlySource::new("nvml", "test host: no GPU"));
    let agent = Agent::new(config, prover, gpu).expect("agent");
    let (stop, shutdown) = watch::channel(false);
    let (handle, task) = agent.spawn(shutdown);
    (handle, stop, task)
}

async fn wait(
    handle: &AgentHandle,
    what: &str,
    pred: impl FnMut(&bitsage_agent::AgentSnapshot) -> bool,
) {
    if tokio::time::timeout(WAIT, handle.wait_until(pred))
        .await
        .is_err()
    {
        panic!(
            "timed out waiting for: {what}; stats {:?}",
            handle.snapshot()
        );
    }
}

fn payer_key() -> starknet::core::types::Felt {
    starknet::core::types::Felt::from(0xa9e47_u64)
}

fn payer() -> WalletAddress {
    WalletAddress::parse("0xc11e9").expect("payer")
}

async fn submit(client: &CoordinatorClient, seed: u64) -> JobId {
    let req = bitsage_chain::snip12::signed_submission(
        &payer_key(),
        payer(),
        JobKind::Poseidon2Chain { seed, length: 64 },
        TokenAmount::from(1_000_000u64),
        Some(3),
        "test",
        bitsage_chain::LOCAL_CHAIN_ID,
    )
    .expect("sign");
    client.submit_job(&req).await.expect("submitted").id
}

async fn finish(
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<AgentReport, AgentError>>,
) -> AgentReport {
    stop.send_replace(true);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("agent stops")
        .expect("agent task")
        .expect("agent report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_proves_a_probe_and_a_job_and_the_receipt_verifies() {
    let coordinator = TestCoordinator::start("127.0.0.1:0");
    let client = coordinator.client();
    let job = submit(&client, 1).await;

    // The operator's profile (`--region`, `--runtime`, `--label`, `--energy-tag`) goes with
    // the signed registration.
    let mut cfg = config(&coordinator.url(), 1);
    let profile = bitsage_core::node::NodeProfile {
        region: Some("eu-west".into()),
        runtime: bitsage_core::node::Runtime::Vllm,
        labels: [("pool".to_string(), "a".to_string())].into(),
        energy_tag: Some("renewable".into()),
    };
    cfg.profile = Some(profile.clone());
    let (handle, stop, task) = start_agent(cfg, Arc::new(StwoProver::new()));
    wait(&handle, "a completed job", |s| s.jobs_completed >= 1).await;
    wait(&handle, "a heartbeat", |s| s.heartbeats_sent >= 1).await;

    let node = handle.node_id().clone();
    let snap = handle.snapshot();
    assert_eq!(snap.probes_passed, 1);
    assert_eq!(snap.node_status, Some(NodeStatus::Active));
    assert_eq!(snap.failures, 0);
    assert!(node.as_str().starts_with("node-"));

    let view = client.job(&job).await.expect("job");
    assert_eq!(view.status, JobStatus::Completed);
    assert_eq!(view.completed_by.as_ref(), Some(&node));
    let detail = client.node(&node).await.expect("node");
    assert_eq!(detail.node.profile, profile);
    assert_eq!(
        detail.operations.latency_24h.run.count, 1,
        "the job's timing"
    );

    // The receipt the coordinator serves verifies offline, countersigned by its key.
    let page = client
        .receipts(&ReceiptListQuery {
            node: Some(node.clone()),
            ..ReceiptListQuery::default()
        })
        .await
        .expect("receipts");
    assert_eq!(page.items.len(), 1);
    let receipt = page.items[0].receipt.clone();
    assert_eq!(receipt.body.job_id, job);
    assert_eq!(receipt.body.net, TokenAmount::from(975_000u64));
    let file = ReceiptFile {
        receipt,
        envelope: None,
        inclusion: None,
    };
    check_receipt(&file, &PublicKey::of(&coordinator_key())).expect("receipt verifies");

    // As a user checks it: `verify-receipt --coordinator URL` pins the published key.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("receipt.json");
    let served = serde_json::to_vec(&page.items[0]).expect("json");
    std::fs::write(&path, served).expect("write");
    let url = coordinator.url();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitsage-agent"))
        .args([
            "verify-receipt",
            &path.to_string_lossy(),
            "--coordinator",
            &url,
        ])
        .output()
        .expect("run verify-receipt");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_id = bitsage_core::deployment::key_id(&PublicKey::of(&coordinator_key()));
    assert!(text.contains(&key_id) && text.contains("VALID"), "{text}");

    let detail = client.node(&node).await.expect("node");
    assert!(detail.last_seen.is_some());
    assert_eq!(detail.node.wallet, wallet());
    // No NVML here: the agent answered the challenge with the reason, and its heartbeats
    // report a CPU-only collector — nothing to sample, which is not a failure (so the
    // coordinator exports `bitsage_gpu_collector_cpu_only`, not `up 0`).
    let att = &detail.node.attestation;
    assert_eq!(att.status, "not_available");
    assert_eq!(
        att.reason.as_deref(),
        Some("attestation not available: test host: no GPU")
    );
    let collector = client
        .node(&node)
        .await
        .expect("node")
        .gpu_collector
        .expect("collector status")
        .status;
    assert_eq!(collector.source, "host-only");
    assert!(collector.is_cpu_only());
    assert!(!collector.up);
    assert_eq!(collector.sample_errors_total, 0);
    assert_eq!(collector.last_error, None);

    let report = finish(stop, task).await;
    assert_eq!(report.node_id, node);
    assert_eq!(report.stats.jobs_completed, 1);
    assert_eq!(report.stats.leases_released, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_coordinator_and_survives_a_restart_that_forgot_it() {
    // Nothing listens yet: the agent keeps trying to register.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let url = format!("http://{addr}");
    let (handle, stop, task) = start_agent(config(&url, 2), Arc::new(StwoProver::new()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.snapshot().registrations, 0);

    let first = TestCoordinator::start(&addr.to_string());
    wait(&handle, "the first probe", |s| s.probes_passed >= 1).await;
    assert!(handle.snapshot().reconnects >= 1);

    // The coordinator goes away and comes back with an empty store: it forgot the node.
    first.stop();
    let second = TestCoordinator::start(&addr.to_string());
    let job = submit(&second.client(), 2).await;
    wait(&handle, "a job completed after the restart", |s| {
        s.jobs_completed >= 1
    })
    .await;
    let snap = handle.snapshot();
    assert!(snap.registrations >= 2, "{snap:?}");
    assert!(snap.probes_passed >= 2, "{snap:?}");
    assert_eq!(
        second.client().job(&job).await.expect("job").status,
        JobStatus::Completed
    );
    finish(stop, task).await;
}

/// Proves the first `free` jobs at once; later ones wait for the gate to open (or forever).
#[derive(Debug)]
struct GatedProver {
    inner: StwoProver,
    free: u32,
    calls: AtomicU32,
    gate: watch::Receiver<bool>,
}

#[async_trait]
impl Prover for GatedProver {
    fn name(&self) -> &'static str {
        "gated"
    }

    async fn prove(&self, spec: &JobSpec) -> bitsage_core::Result<ProofEnvelope> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.free {
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        self.inner.prove(spec).await
    }

    async fn verify(
        &self,
        spec: &JobSpec,
        envelope: &ProofEnvelope,
    ) -> bitsage_core::Result<VerifiedProof> {
        self.inner.verify(spec, envelope).await
    }
}

fn gated() -> (Arc<GatedProver>, watch::Sender<bool>) {
    let (open, gate) = watch::channel(false);
    (
        Arc::new(GatedProver {
            inner: StwoProver::new(),
            free: 1, // the probe
            calls: AtomicU32::new(0),
            gate,
        }),
        open,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_in_progress_at_shutdown_is_finished_and_handed_in() {
    let coordinator = TestCoordinator::start("127.0.0.1:0");
    let client = coordinator.client();
    let job = submit(&client, 3).await;
    let (prover, open) = gated();
    let mut cfg = config(&coordinator.url(), 3);
    cfg.shutdown_grace = WAIT;
    let (handle, stop, task) = start_agent(cfg, prover);
    wait(&handle, "proving the job", |s| {
        s.probes_passed == 1 && s.proving
    })
    .await;

    stop.send_replace(true);
    // Shutdown asked: the agent keeps the proof going; let it finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !task.is_finished(),
        "the agent stopped without finishing its proof"
    );
    open.send_replace(true);
    let report = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("task")
        .expect("report");
    assert_eq!(report.stats.jobs_completed, 1, "{report:?}");
    assert_eq!(report.stats.leases_released, 0);
    assert_eq!(
        client.job(&job).await.expect("job").status,
        JobStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_the_lease_is_given_back() {
    let coordinator = TestCoordinator::start("127.0.0.1:0");
    let client = coordinator.client();
    let job = submit(&client, 4).await;
    let (prover, _never_opened) = gated();
    let mut cfg = config(&coordinator.url(), 4);
    cfg.shutdown_grace = Duration::from_millis(200);
    let (handle, stop, task) = start_agent(cfg, prover);
    wait(&handle, "proving the job", |s| {
        s.probes_passed == 1 && s.proving
    })
    .await;

    let report = finish(stop, task).await;
    assert_eq!(report.stats.jobs_completed, 0);
    assert_eq!(report.stats.leases_released, 1, "{report:?}");
    let view = client.job(&job).await.expect("job");
    assert_eq!(view.status, JobStatus::Queued, "{view:?}");
    assert!(
        view.last_error
            .as_deref()
            .unwrap_or("")
            .contains(SHUTDOWN_REASON),
        "{view:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_ends_the_run_with_the_reason() {
    let coordinator = TestCoordinator::start("127.0.0.1:0");
    let node = NodeId::parse("node-taken").expect("id");
    // Someone else holds this node id with another key.
    coordinator
        .client()
        .register(&RegisterRequest::signed(
            &SigningKey::from_bytes(&[99; 32]),
            node.clone(),
            wallet(),
            HardwareReport::default(),
            "other/1",
            bitsage_core::time::now(),
        ))
        .await
        .expect("registered");

    let cfg = config(&coordinator.url(), 5).with_node_id(node);
    let (_handle, _stop, task) = start_agent(cfg, Arc::new(StwoProver::new()));
    let result = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("task");
    match result {
        Err(AgentError::Registration(e)) => {
            assert!(e.is_client_error(), "{e:?}");
        }
        other => panic!("expected a refused registration, got {other:?}"),
    }
}

/// One confidential-compute GPU whose attestation report is the SPDM request over the
/// challenge nonce (the part the coordinator checks) plus filler for the signed response.
#[derive(Debug)]
struct AttestingGpu;

const CC_GPU: &str = "GPU-cc000000-0000-0000-0000-000000000000";

#[async_trait]
impl GpuSource for AttestingGpu {
    fn name(&self) -> &'static str {
        "attesting-test-double"
    }
    async fn inventory(&self) -> bitsage_core::Result<GpuInventory> {
        Ok(GpuInventory {
            devices: vec![GpuDevice {
                index: 0,
                uuid: CC_GPU.into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: None,
                memory_total_bytes: None,
                mig_enabled: None,
                confidential_compute: Some(true),
                tier: None,
                state: DeviceState::Ok,
            }],
            ..GpuInventory::default()
        })
    }
    async fn sample(&self) -> bitsage_core::Result<Vec<GpuSample>> {
        Ok(vec![GpuSample::empty(CC_GPU, bitsage_core::time::now())])
    }
    async fn host(&self) -> bitsage_core::Result<HostInfo> {
        HostSource::new().read_async().await
    }
    async fn attest(&self, nonce: [u8; ATTESTATION_NONCE_LEN]) -> HostAttestation {
        let mut report = vec![0x11, 0xE0, 0x01, 0xff];
        report.extend_from_slice(&nonce);
        report.extend_from_slice(&[0; 64]);
        HostAttestation::Devices {
            devices: vec![DeviceAttestation {
                uuid: CC_GPU.into(),
                attestation: Attestation::Report {
                    report_hex: report.iter().map(|b| format!("{b:02x}")).collect(),
                    cec_report_hex: None,
                },
            }],
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_an_attestation_over_the_coordinators_nonce() {
    let coordinator = TestCoordinator::start("127.0.0.1:0");
    let client = coordinator.client();
    let agent = Agent::new(
        config(&coordinator.url(), 7),
        Arc::new(StwoProver::new()),
        Arc::new(AttestingGpu),
    )
    .expect("agent");
    let (stop, shutdown) = watch::channel(false);
    let (handle, task) = agent.spawn(shutdown);
    wait(&handle, "a heartbeat", |s| s.heartbeats_sent >= 1).await;
    let node = handle.node_id().clone();
    let detail = client.node(&node).await.expect("node");
    let att = &detail.node.attestation;
    assert_eq!(att.status, "report", "{att:?}");
    assert!(att.nonce_bound && !att.signature_verified);
    assert_eq!(att.devices[0].uuid, CC_GPU);
    let evidence = client.attestation_evidence(&node).await.expect("evidence");
    assert!(evidence
        .evidence
        .challenge
        .verify(
            &PublicKey::of(&coordinator_key()),
            evidence.evidence.challenge.expires_at
        )
        .is_ok());
    assert!(
        detail.gpu_collector.is_some(),
        "heartbeats carry the collector"
    );
    finish(stop, task).await;
}
