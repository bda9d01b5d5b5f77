//! SqliteStore durability: a child process acknowledges writes, is killed with SIGKILL
//! mid-stream, and every acknowledged write is found after reopening.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bitsage_core::conformance::store::{new_job, new_node, signed_receipt, t};
use bitsage_core::ledger::EarningEntry;
use bitsage_core::node::Heartbeat;
use bitsage_core::store_prelude::*;
use bitsage_core::{JobId, NodeId, TokenAmount};
use bitsage_store::SqliteStore;

const CHILD_DIR_VAR: &str = "BITSAGE_KILL9_CHILD_DIR";
/// Acknowledged iterations to wait for before the kill (the child keeps writing past it).
const ACKS_BEFORE_KILL: usize = 200;

/// One acknowledged unit of work: a job, a ledger credit, a receipt and a heartbeat, each its
/// own committed transaction; the ack line names all four ids.
async fn write_one(store: &SqliteStore, i: u64) -> String {
    let job = new_job(i, 1_000 + i, 3, t(i as i64));
    store.enqueue_job(&job).await.expect("enqueue");
    let entry = EarningEntry::with_fee_bps(
        NodeId::parse("node-1").expect("id"),
        job.spec.id,
        TokenAmount::from(1_000 + i),
        250,
        t(i as i64),
    )
    .expect("entry");
    store.credit_earning(&entry).await.expect("credit");
    let receipt = signed_receipt(1, "poseidon2-chain", t(i as i64), 1_000 + i);
    store.insert_receipt(&receipt).await.expect("receipt");
    store
        .append_heartbeat(&Heartbeat {
            node_id: NodeId::parse("node-1").expect("id"),
            at: t(i as i64),
            sequence: i + 1,
            load_average_1m: None,
            agent_version: "0.1.0".into(),
            gpu_collector: None,
            gpu_samples: Vec::new(),
        })
        .await
        .expect("heartbeat");
    format!("ack {i} {} {} {}", job.spec.id, entry.id, receipt.body.id)
}

/// The child's side: runs only when spawned by `sqlite_survives_sigkill` (it sets the env var).
#[tokio::test]
async fn kill9_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        eprintln!("kill9_child_writer: helper process for sqlite_survives_sigkill; nothing to do when run directly");
        return;
    };
    let store = SqliteStore::open_dir(&dir).await.expect("open");
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("node");
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let line = write_one(&store, i).await;
        // The ack is printed only after every write of the unit returned Ok.
        writeln!(out, "{line}").expect("stdout");
        out.flush().expect("flush");
    }
}

#[tokio::test]
async fn sqlite_survives_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            // This test binary's name for the child test (module path without the crate).
            "durability::kill9_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acks: Vec<(JobId, String, String)> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        let Some(rest) = line.strip_prefix("ack ") else {
            continue;
        };
        let parts: Vec<&str> = rest.split(' ').collect();
        acks.push((
            JobId::parse(parts[1]).expect("job id"),
            parts[2].to_string(),
            parts[3].to_string(),
        ));
        if acks.len() >= ACKS_BEFORE_KILL {
            break;
        }
    }
    // SIGKILL while the child is in the middle of further writes.
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child must have been killed");
    assert_eq!(
        acks.len(),
        ACKS_BEFORE_KILL,
        "child stopped before acknowledging enough writes"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;

    let store = SqliteStore::open_dir(dir.path())
        .await
        .expect("reopen after SIGKILL");
    for (job_id, entry_id, receipt_id) in &acks {
        assert!(
            store.get_job(job_id).await.expect("get job").is_some(),
            "acknowledged job {job_id} lost"
        );
        let receipt_id = bitsage_core::ReceiptId::parse(receipt_id).expect("receipt id");
        assert!(
            store
                .get_receipt(&receipt_id)
                .await
                .expect("get receipt")
                .is_some(),
            "acknowledged receipt lost"
        );
        let _ = entry_id;
    }
    let node = NodeId::parse("node-1").expect("id");
    let total = store.earnings_total(&node, None).await.expect("total");
    assert!(
        total.entries >= ACKS_BEFORE_KILL as u64,
        "acknowledged ledger entries lost: {}",
        total.entries
    );
    let beats = store
        .heartbeat_times(
            &node,
            bitsage_core::TimeWindow::new(t(-1), t(1_000_000)).expect("window"),
        )
        .await
        .expect("heartbeats");
    assert!(
        beats.len() >= ACKS_BEFORE_KILL,
        "acknowledged heartbeats lost: {}",
        beats.len()
    );
    println!("sqlite_survives_sigkill: {} acknowledged units, {} ledger entries and {} heartbeats found after SIGKILL", acks.len(), total.entries, beats.len());
}
