//! `bitsage-agent verify-receipt` as a user runs it, on receipts built here.

use std::path::Path;
use std::process::{Command, Output};

use bitsage_core::crypto::PublicKey;
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::receipt::{Receipt, ReceiptBody};
use bitsage_core::{JobId, JobKind, JobSpec, NodeId, ReceiptId, TokenAmount};
use bitsage_http::api::ReceiptView;
use bitsage_prover::StwoProver;
use ed25519_dalek::SigningKey;
use serde_json::Value;

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitsage-agent"))
        .args(args)
        .output()
        .expect("run bitsage-agent")
}

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn coordinator_key() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

/// The pinned deployment key (hex).
fn pin() -> String {
    PublicKey::of(&coordinator_key()).to_hex()
}

fn receipt_for(spec: &JobSpec, output: &str, proof_hash: bitsage_core::crypto::Hash32) -> Receipt {
    let (node, coord) = (node_key(), coordinator_key());
    let body = ReceiptBody {
        id: ReceiptId(spec.id.0),
        job_id: spec.id,
        kind: spec.kind.name().into(),
        node_id: NodeId::parse("node-test").expect("id"),
        node_key: PublicKey::of(&node),
        coordinator_key: PublicKey::of(&coord),
        output: output.into(),
        proof_hash,
        payment: TokenAmount::from(1_000_000u64),
        fee: TokenAmount::from(25_000u64),
        net: TokenAmount::from(975_000u64),
        completed_at: bitsage_core::time::now(),
    };
    let sig = body.sign_as_node(&node).expect("node signs");
    Receipt::countersign(body, sig, &coord).expect("coordinator countersigns")
}

fn small_job() -> (JobSpec, ProofEnvelope) {
    let spec = JobSpec::new(
        JobId::new(),
        JobKind::Poseidon2Chain {
            seed: 7,
            length: 64,
        },
    )
    .expect("spec");
    let envelope = StwoProver::new().prove_sync(&spec).expect("proof");
    (spec, envelope)
}

/// The receipt as `GET /api/receipts/{id}` serves it (with the `*_formatted` fields).
fn served(receipt: &Receipt) -> Value {
    serde_json::to_value(ReceiptView::from(receipt.clone())).expect("json")
}

fn write(dir: &Path, name: &str, doc: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(doc).expect("json")).expect("write");
    path.to_string_lossy().into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_served_receipt_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, envelope) = small_job();
    let receipt = receipt_for(&spec, &envelope.output, envelope.proof_hash);
    let doc = served(&receipt);
    assert!(doc.get("net_formatted").is_some(), "{doc}");
    let file = write(dir.path(), "receipt.json", &doc);

    let coord = PublicKey::of(&coordinator_key()).to_hex();
    let out = agent(&["verify-receipt", &file, "--coordinator-key", &coord]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("VALID"), "{text}");
    assert!(text.contains(&spec.id.to_string()), "{text}");
    assert!(text.contains("poseidon2-chain"), "{text}");
    assert!(text.contains("975000"), "{text}");
    assert!(text.contains("proof not checked"), "{text}");

    // Pinned to another key: invalid, saying so.
    let other = PublicKey::of(&SigningKey::from_bytes(&[9; 32])).to_hex();
    let out = agent(&["verify-receipt", &file, "--coordinator-key", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("INVALID: coordinator key is"),
        "{}",
        stdout(&out)
    );

    // No pin at all: refused, saying how to pin.
    let out = agent(&["verify-receipt", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no deployment key pinned"), "{err}");
    assert!(err.contains("--coordinator URL"), "{err}");
}

#[test]
fn a_receipt_vouching_for_its_own_keys_is_invalid() {
    // Two freshly made keys sign a receipt: both signatures verify, but the countersigning
    // key is not the deployment's, so it is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, envelope) = small_job();
    let (node, forger) = (
        SigningKey::from_bytes(&[5; 32]),
        SigningKey::from_bytes(&[6; 32]),
    );
    let mut body = receipt_for(&spec, &envelope.output, envelope.proof_hash).body;
    body.node_key = PublicKey::of(&node);
    body.coordinator_key = PublicKey::of(&forger);
    let sig = body.sign_as_node(&node).expect("node signs");
    let forged = Receipt::countersign(body, sig, &forger).expect("countersign");
    assert!(forged.verify().is_ok(), "self-consistent");
    let mut doc = served(&forged);
    doc["envelope"] = serde_json::to_value(&envelope).expect("json");
    let file = write(dir.path(), "forged.json", &doc);
    let coord = PublicKey::of(&coordinator_key()).to_hex();
    let out = agent(&["verify-receipt", &file, "--coordinator-key", &coord]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not the pinned deployment key"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_tampered_receipt_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, envelope) = small_job();
    let receipt = receipt_for(&spec, &envelope.output, envelope.proof_hash);

    // Amounts changed (still adding up): the signatures no longer cover them.
    let mut doc = served(&receipt);
    doc["fee"] = "24000".into();
    doc["net"] = "976000".into();
    let file = write(dir.path(), "amounts.json", &doc);
    let out = agent(&["verify-receipt", &file, "--coordinator-key", &pin()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("INVALID"), "{text}");
    assert!(text.contains("node signature does not verify"), "{text}");

    // Amounts that do not add up.
    let mut doc = served(&receipt);
    doc["net"] = "1".into();
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "sum.json", &doc),
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("net is not payment minus fee"),
        "{}",
        stdout(&out)
    );

    // The countersignature flipped.
    let mut tampered = receipt.clone();
    tampered.coordinator_signature.0[0] ^= 1;
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "sig.json", &served(&tampered)),
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("coordinator countersignature does not verify"),
        "{}",
        stdout(&out)
    );

    // Not a receipt at all.
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "junk.json", &serde_json::json!({"hello": 1})),
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("INVALID: not a receipt"),
        "{}",
        stdout(&out)
    );

    // A missing file is a usage error, not "invalid".
    let out = agent(&[
        "verify-receipt",
        "/nonexistent/receipt.json",
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_envelope_is_checked_against_the_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, envelope) = small_job();
    let receipt = receipt_for(&spec, &envelope.output, envelope.proof_hash);

    let mut doc = served(&receipt);
    doc["envelope"] = serde_json::to_value(&envelope).expect("json");
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "ok.json", &doc),
        "--coordinator-key",
        &pin(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("security     "), "{text}");
    assert!(text.contains("bits (proof verified)"), "{text}");

    // Another job's proof: the receipt does not name it.
    let (_, other) = small_job();
    let mut doc = served(&receipt);
    doc["envelope"] = serde_json::to_value(&other).expect("json");
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "other.json", &doc),
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("the envelope does not match the receipt"),
        "{text}"
    );

    // The receipt's job, but a different proof hash than the receipt states.
    let mut wrong_hash = envelope.clone();
    wrong_hash.proof_hash.0[0] ^= 1;
    let mut doc = served(&receipt);
    doc["envelope"] = serde_json::to_value(&wrong_hash).expect("json");
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "hash.json", &doc),
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("proof hash"), "{}", stdout(&out));

    // A receipt honestly signed over a forged proof: names match, the proof does not verify.
    let mut forged = envelope.clone();
    forged.proof[10] ^= 1;
    let receipt = receipt_for(&spec, &forged.output, forged.proof_hash);
    let mut doc = served(&receipt);
    doc["envelope"] = serde_json::to_value(&forged).expect("json");
    let out = agent(&[
        "verify-receipt",
        &write(dir.path(), "forged.json", &doc),
        "--coordinator-key",
        &pin(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("the proof does not verify"),
        "{}",
        stdout(&out)
    );
}
