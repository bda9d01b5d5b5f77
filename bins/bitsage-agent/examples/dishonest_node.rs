//! A TEST DOUBLE, not an agent to run: a node that cheats, for the console's browser tests
//! (`console-tests/tests/console-live.test.mjs`) and for anyone who wants to see what the
//! coordinator does to a cheating node.
//!
//! It registers like the real agent (the same library pieces: [`NodeKey`], the hardware
//! report, [`CoordinatorClient`]), heartbeats, passes its probe honestly (a real proof from
//! the real prover), then leases one paid job, proves it honestly too — and hands it in with
//! a receipt whose node signature was made with **another key** than the one the node
//! registered. The coordinator checks that signature against the node's registered key
//! (`bitsage-core/src/service/jobs.rs`, `complete_job`), refuses the completion and
//! quarantines the node with the reason `bad signature: receipt signature for job … does not
//! verify`.
//!
//! ```text
//! cargo run -p bitsage-agent --example dishonest_node -- --coordinator http://127.0.0.1:8080
//! ```
//!
//! Prints `node identity node=…` at start (as the agent does), `probe passed`, `forged
//! receipt sent job=…`, then `quarantined: …` with the coordinator's answer, and exits 0 once
//! the coordinator refused the forged receipt (1 on any other outcome, or after `--timeout-secs`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bitsage_agent::hardware::hardware_report;
use bitsage_agent::NodeKey;
use bitsage_core::crypto::{Hash32, PublicKey, SignatureBytes};
use bitsage_core::message::Assignment;
use bitsage_core::receipt::ReceiptBody;
use bitsage_core::time::now;
use bitsage_core::{ReceiptId, WalletAddress};
use bitsage_http::api::{CompleteRequest, HeartbeatRequest, LeaseRequest, RegisterRequest};
use bitsage_http::client::CoordinatorClient;
use clap::Parser;

/// The version string the double registers with (it says what it is).
const VERSION: &str = "dishonest-node/test-double";

#[derive(Debug, Parser)]
#[command(about = "A test double: a node that forges its receipt signature (gets quarantined)")]
struct Args {
    /// The coordinator's base URL.
    #[arg(long)]
    coordinator: String,
    /// The wallet it registers for (default: a fixed test wallet).
    #[arg(long, default_value = "0x646973686f6e657374")]
    wallet: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wallet = WalletAddress::parse(&args.wallet).context("--wallet")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    match tokio::time::timeout_at(deadline, run(&args.coordinator, wallet)).await {
        Ok(r) => r,
        Err(_) => bail!("no forged receipt refused within {} s", args.timeout_secs),
    }
}

async fn run(url: &str, wallet: WalletAddress) -> anyhow::Result<()> {
    let key = NodeKey::generate();
    let signing = key.signing_key().clone();
    let node_id = key.default_node_id();
    println!("node identity node={node_id} (dishonest test double)");
    let client = CoordinatorClient::new(url)?.with_timeout(Duration::from_secs(30));

    let gpu = bitsage_gpu::LocalGpu::detect().await.source();
    let hardware = hardware_report(gpu.as_ref(), Duration::from_secs(10)).await;
    let req = RegisterRequest::signed(&signing, node_id.clone(), wallet, hardware, VERSION, now());
    let registered = client.register(&req).await.context("register")?;
    let coordinator_key = registered.response.coordinator_public_key;
    let interval = Duration::from_secs(registered.response.heartbeat_interval_secs.max(1));
    println!("registered status={}", registered.response.node.status);

    // Heartbeats in the background, so the node stays active while it waits for a job.
    let heartbeats = {
        let client = client.clone();
        let signing = signing.clone();
        let node_id = node_id.clone();
        tokio::spawn(async move {
            let mut sequence = 0u64;
            loop {
                sequence = sequence
                    .max(u64::try_from(now().timestamp_micros()).unwrap_or(0))
                    .saturating_add(1);
                let hb = HeartbeatRequest::signed(
                    &signing,
                    node_id.clone(),
                    sequence,
                    now(),
                    None,
                    VERSION,
                    Vec::new(),
                );
                if let Err(e) = client.heartbeat(&hb).await {
                    eprintln!("heartbeat failed: {e}");
                }
                tokio::time::sleep(interval).await;
            }
        })
    };

    let prover: Arc<dyn bitsage_core::Prover> = Arc::new(bitsage_prover::StwoProver::new());
    let result = async {
        loop {
            let lease = LeaseRequest::signed(&signing, node_id.clone(), rand::random(), now());
            let resp = client.lease(&lease).await.context("lease")?;
            let Some(assignment) = resp.assignment else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let envelope = prover.prove(assignment.spec()).await.context("prove")?;
            let sent_at = now();
            let mut complete = CompleteRequest {
                node_id: node_id.clone(),
                job_id: assignment.spec().id,
                lease_id: None,
                probe: None,
                envelope: envelope.clone(),
                receipt: None,
                receipt_signature: None,
                envelope_digest: Hash32([0; 32]),
                sent_at,
                signature: SignatureBytes([0; 64]),
            };
            match &assignment {
                Assignment::Probe { ticket } => {
                    // Honest: a real proof of the probe.
                    complete.probe = Some(ticket.clone());
                    let done = client
                        .complete(&complete.sign(&signing))
                        .await
                        .context("probe")?;
                    println!("probe passed status={}", done.node_status);
                }
                Assignment::Job { lease, fee, net } => {
                    // Every field of the receipt is right ...
                    let body = ReceiptBody {
                        id: ReceiptId(lease.spec.id.0),
                        job_id: lease.spec.id,
                        kind: lease.spec.kind.name().into(),
                        node_id: node_id.clone(),
                        node_key: PublicKey::of(&signing),
                        coordinator_key,
                        output: envelope.output.clone(),
                        proof_hash: envelope.proof_hash,
                        payment: lease.payment,
                        fee: *fee,
                        net: *net,
                        completed_at: sent_at,
                    };
                    // ... but its signature is another key's: the forgery.
                    let other = NodeKey::generate();
                    let forged =
                        bitsage_core::crypto::sign(other.signing_key(), &body.canonical_bytes());
                    complete.lease_id = Some(lease.lease.lease_id);
                    complete.receipt = Some(body);
                    complete.receipt_signature = Some(forged);
                    println!("forged receipt sent job={}", lease.spec.id);
                    return match client.complete(&complete.sign(&signing)).await {
                        Ok(_) => bail!("the coordinator ACCEPTED a forged receipt"),
                        Err(e) => {
                            println!("quarantined: the coordinator refused it: {e}");
                            Ok(())
                        }
                    };
                }
            }
        }
    }
    .await;
    heartbeats.abort();
    result
}
