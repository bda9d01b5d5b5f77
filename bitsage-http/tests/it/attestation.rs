//! Confidential-compute attestation at registration: the coordinator's challenge, reports
//! bound to its nonce, honest `not_available`, and the evidence endpoint.

use crate::common;

use axum::http::StatusCode;
use bitsage_core::attestation::{
    Attestation, AttestationChallenge, DeviceAttestation, HostAttestation, RegistrationAttestation,
};
use bitsage_core::crypto::PublicKey;
use bitsage_core::gpu::{DeviceState, GpuDevice};
use bitsage_core::node::HardwareReport;
use bitsage_core::store_prelude::*;
use bitsage_http::api::{AttestationEvidence, NodeDetail, RegisterRequest, RegisterResponse};
use common::*;

fn gpu(index: u32) -> GpuDevice {
    GpuDevice {
        index,
        uuid: format!("GPU-cc{index:04}"),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: None,
        memory_total_bytes: Some(85_520_809_984),
        mig_enabled: Some(false),
        confidential_compute: Some(true),
        tier: None,
        state: DeviceState::Ok,
    }
}

/// The shape of an NVIDIA report: the SPDM GET_MEASUREMENTS request (with the nonce at
/// bytes 4..36) followed by `tail` bytes standing in for the signed response.
fn report_over(nonce: &[u8; 32], tail: usize) -> String {
    let mut r = vec![0x11, 0xE0, 0x01, 0xff];
    r.extend_from_slice(nonce);
    r.push(0);
    r.extend(std::iter::repeat_n(0x5a, tail));
    hex::encode(r)
}

/// A challenge for the key registrations here are signed with (`key(1)`).
async fn challenge(t: &TestApp) -> AttestationChallenge {
    let uri = format!(
        "/api/nodes/attestation-challenge?public_key={}",
        PublicKey::of(&key(1))
    );
    let r = send(&t.app, get(&uri)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.parse()
}

fn registration(id: &str, gpus: Vec<GpuDevice>, a: RegistrationAttestation) -> RegisterRequest {
    RegisterRequest::signed(
        &key(1),
        node_id(id),
        wallet(),
        HardwareReport {
            gpus,
            attestation: Some(a),
            ..HardwareReport::default()
        },
        "bitsage-agent/0.1.0",
        bitsage_core::time::now(),
    )
}

fn devices(gpus: &[GpuDevice], report: impl Fn(&GpuDevice) -> Attestation) -> HostAttestation {
    HostAttestation::Devices {
        devices: gpus
            .iter()
            .map(|g| DeviceAttestation {
                uuid: g.uuid.clone(),
                attestation: report(g),
            })
            .collect(),
    }
}

#[tokio::test]
async fn the_challenge_is_fresh_signed_and_short_lived() {
    let t = app();
    let a = challenge(&t).await;
    let b = challenge(&t).await;
    assert_ne!(
        a.nonce_hex, b.nonce_hex,
        "every challenge has its own nonce"
    );
    assert_eq!(a.nonce_hex.len(), 64);
    let coordinator = PublicKey::of(&key(42));
    a.verify(&coordinator, bitsage_core::time::now()).unwrap();
    assert_eq!(a.public_key, PublicKey::of(&key(1)));
    // The key is required and must be a key.
    for uri in [
        "/api/nodes/attestation-challenge",
        "/api/nodes/attestation-challenge?public_key=zz",
    ] {
        send(&t.app, get(uri))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let ttl = a.expires_at - bitsage_core::time::now();
    assert!(ttl <= chrono::TimeDelta::minutes(5) && ttl > chrono::TimeDelta::minutes(4));
}

#[tokio::test]
async fn reports_over_the_nonce_are_accepted_summarised_and_kept_as_evidence() {
    let t = app();
    let c = challenge(&t).await;
    let nonce = c.nonce().unwrap();
    // Eight GPUs with full-size reports (8 KiB + a CEC report each) fit the 1 MiB limit.
    let gpus: Vec<GpuDevice> = (0..8).map(gpu).collect();
    let result = devices(&gpus, |_| Attestation::Report {
        report_hex: report_over(&nonce, 8192 - 37),
        cec_report_hex: Some(hex::encode([7u8; 4096])),
    });
    let req = registration(
        "cc-node",
        gpus.clone(),
        RegistrationAttestation {
            challenge: c,
            result,
        },
    );
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body: RegisterResponse = r.parse();
    let a = &body.node.attestation;
    assert_eq!(a.status, "report");
    assert!(a.nonce_bound);
    assert!(
        !a.signature_verified,
        "signatures are never claimed verified"
    );
    assert_eq!(a.devices.len(), 8);
    assert_eq!(a.devices[0].report_bytes, Some(8192));
    // Views leave the raw evidence out...
    assert!(body.node.hardware.attestation.is_none());
    let detail: NodeDetail = send(&t.app, get("/api/nodes/cc-node")).await.parse();
    assert_eq!(detail.node.attestation.status, "report");
    // ...and the evidence endpoint serves it whole.
    let r = send(&t.app, get("/api/nodes/cc-node/attestation")).await;
    assert_eq!(r.status, StatusCode::OK);
    let ev: AttestationEvidence = r.parse();
    assert_eq!(ev.evidence.challenge.nonce().unwrap(), nonce);
    match &ev.evidence.result {
        HostAttestation::Devices { devices } => assert_eq!(devices.len(), 8),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn foreign_expired_or_unbound_attestations_are_422_and_nothing_is_stored() {
    let t = app();
    let g = vec![gpu(0)];
    let c = challenge(&t).await;
    let nonce = c.nonce().unwrap();
    let good = |c: AttestationChallenge, nonce: [u8; 32]| RegistrationAttestation {
        challenge: c,
        result: devices(&g, |_| Attestation::Report {
            report_hex: report_over(&nonce, 100),
            cec_report_hex: None,
        }),
    };
    let now = bitsage_core::time::now();
    let cases: Vec<(&str, RegistrationAttestation, Vec<GpuDevice>)> = vec![
        // A report over another nonce (a replayed report).
        (
            "not over the challenge nonce",
            good(c.clone(), [3; 32]),
            g.clone(),
        ),
        // A challenge the coordinator never issued.
        (
            "not issued by this coordinator",
            good(
                AttestationChallenge::signed(&key(9), c.public_key, nonce, c.expires_at),
                nonce,
            ),
            g.clone(),
        ),
        // Its own challenge, expired.
        (
            "expired",
            good(
                AttestationChallenge::signed(
                    &key(42),
                    c.public_key,
                    nonce,
                    now - chrono::TimeDelta::seconds(1),
                ),
                nonce,
            ),
            g.clone(),
        ),
        // A challenge issued to another node key (someone else's report).
        (
            "another node key",
            good(
                AttestationChallenge::signed(&key(42), PublicKey::of(&key(5)), nonce, c.expires_at),
                nonce,
            ),
            g.clone(),
        ),
        // A report for a GPU the node does not register.
        (
            "not one of the registered GPUs",
            good(c.clone(), nonce),
            vec![gpu(1)],
        ),
        // Bytes that are not an SPDM measurement request.
        (
            "GET_MEASUREMENTS",
            RegistrationAttestation {
                challenge: c.clone(),
                result: devices(&g, |_| Attestation::Report {
                    report_hex: hex::encode([0u8; 64]),
                    cec_report_hex: None,
                }),
            },
            g.clone(),
        ),
    ];
    for (want, a, gpus) in cases {
        let r = send(
            &t.app,
            post_json("/api/nodes/register", &registration("cc-node", gpus, a)),
        )
        .await;
        let e = r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "attestation_rejected");
        assert!(
            e.error.message.contains(want),
            "{want}: {}",
            e.error.message
        );
        assert!(t
            .store
            .get_node(&node_id("cc-node"))
            .await
            .unwrap()
            .is_none());
    }
    // The same registration with the right nonce goes through.
    let r = send(
        &t.app,
        post_json(
            "/api/nodes/register",
            &registration("cc-node", g.clone(), good(c, nonce)),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn not_available_and_not_requested_are_said_as_such() {
    let t = app();
    let c = challenge(&t).await;
    let req = registration(
        "plain-node",
        vec![gpu(0)],
        RegistrationAttestation {
            challenge: c,
            result: devices(&[gpu(0)], |_| {
                Attestation::not_available("confidential-compute mode is off")
            }),
        },
    );
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let body: RegisterResponse = r.parse();
    assert_eq!(body.node.attestation.status, "not_available");
    assert!(!body.node.attestation.nonce_bound);
    assert_eq!(
        body.node.attestation.devices[0].reason.as_deref(),
        Some("confidential-compute mode is off")
    );

    // A node that registered without a challenge.
    register(&t.app, &key(2), "old-agent").await;
    let detail: NodeDetail = send(&t.app, get("/api/nodes/old-agent")).await.parse();
    assert_eq!(detail.node.attestation.status, "not_requested");
    send(&t.app, get("/api/nodes/old-agent/attestation"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}
