//! Confidential-compute attestation at registration.
//!
//! The flow: the agent fetches an [`AttestationChallenge`] (a fresh nonce the coordinator
//! signed, with an expiry), asks NVML for each GPU's attestation report over that nonce, and
//! registers with a [`RegistrationAttestation`]: the challenge and, per device, the report or
//! an honest [`Attestation::NotAvailable`] with the reason. TEE support is never inferred from
//! a model name.
//!
//! What the coordinator checks ([`RegistrationAttestation::check`]): the challenge is its own
//! and not expired; every report names one of the registered GPUs, has a sane size and
//! **embeds the challenge nonce** (the report starts with the SPDM `GET_MEASUREMENTS` request,
//! whose bytes 4..36 are the requester's nonce, see [`report_nonce`]). It does **not** verify
//! the report's signature or the device certificate chain: that needs NVIDIA's certificate
//! authority and reference measurements (NVIDIA's verifier, `nvtrust`). The raw evidence is
//! kept so such a verifier can check it later; the API says `signature_verified: false`.

use serde::{Deserialize, Serialize};

use crate::crypto::{sign, CanonicalWriter, PublicKey, SignatureBytes};
use crate::time::Timestamp;
use crate::Error;

/// The nonce length NVML's attestation call takes (`NVML_CC_GPU_CEC_NONCE_SIZE`), bytes.
pub const ATTESTATION_NONCE_LEN: usize = 32;
/// Largest GPU attestation report NVML returns (`NVML_CC_GPU_ATTESTATION_REPORT_SIZE`), bytes.
pub const MAX_ATTESTATION_REPORT_LEN: usize = 0x2000;
/// Largest CEC attestation report NVML returns (`NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE`).
pub const MAX_CEC_REPORT_LEN: usize = 0x1000;
/// Longest "not available" reason a registration may carry, bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Domain tag of a challenge's canonical bytes.
pub const CHALLENGE_DOMAIN: &str = "bitsage/attestation-challenge/v1";

/// SPDM request code of `GET_MEASUREMENTS` (DSP0274).
const SPDM_GET_MEASUREMENTS: u8 = 0xE0;
/// Bytes of the SPDM `GET_MEASUREMENTS` request that opens an NVIDIA attestation report:
/// version, code, param1, param2, nonce (32), slot id.
const SPDM_REQUEST_LEN: usize = 4 + ATTESTATION_NONCE_LEN + 1;

/// One device's attestation outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Attestation {
    /// NVML returned a report (confidential-compute mode is on).
    Report {
        /// The GPU attestation report, lower-case hex (it embeds the nonce).
        report_hex: String,
        /// The CEC attestation report, hex, when NVML says one is present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cec_report_hex: Option<String>,
    },
    /// No report: confidential compute is off or unsupported, NVML is missing, or it refused.
    NotAvailable {
        /// Why, in words an operator can act on.
        reason: String,
    },
}

impl Attestation {
    /// [`Attestation::NotAvailable`] with `reason`.
    pub fn not_available(reason: impl Into<String>) -> Self {
        Attestation::NotAvailable {
            reason: reason.into(),
        }
    }

    /// Whether a report is present.
    pub fn is_report(&self) -> bool {
        matches!(self, Attestation::Report { .. })
    }
}

/// One device's attestation, keyed by its UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceAttestation {
    /// The device's UUID.
    pub uuid: String,
    /// Its outcome.
    pub attestation: Attestation,
}

/// A host's attestation answer: one outcome per device, or why there is none at all (no
/// NVML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HostAttestation {
    /// NVML answered; each device has a report or its own reason.
    Devices {
        /// One outcome per device.
        devices: Vec<DeviceAttestation>,
    },
    /// No attestation at all on this host.
    NotAvailable {
        /// Why, in words an operator can act on.
        reason: String,
    },
}

impl HostAttestation {
    /// No attestation on this host, because of `why`: reads "attestation not available: {why}".
    pub fn unavailable(why: impl std::fmt::Display) -> Self {
        HostAttestation::NotAvailable {
            reason: format!("attestation not available: {why}"),
        }
    }
}

/// A nonce chosen and signed by the coordinator for one node key, valid until `expires_at`.
/// Stateless: the coordinator recognises its own challenges by the signature. Binding the
/// key means a report made for one registering node cannot be reused by another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttestationChallenge {
    /// The node key the challenge was issued to (the registration must be signed by it).
    pub public_key: PublicKey,
    /// The nonce, 64 lower-case hex digits.
    pub nonce_hex: String,
    /// The challenge is refused after this time.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub expires_at: Timestamp,
    /// The coordinator's signature over [`AttestationChallenge::canonical_bytes`].
    pub coordinator_signature: SignatureBytes,
}

impl AttestationChallenge {
    /// A challenge for `nonce` issued to `public_key`, signed with the coordinator's key.
    pub fn signed(
        coordinator: &ed25519_dalek::SigningKey,
        public_key: PublicKey,
        nonce: [u8; ATTESTATION_NONCE_LEN],
        expires_at: Timestamp,
    ) -> Self {
        let mut c = Self {
            public_key,
            nonce_hex: hex::encode(nonce),
            expires_at,
            coordinator_signature: SignatureBytes([0; 64]),
        };
        c.coordinator_signature = sign(coordinator, &c.canonical_bytes());
        c
    }

    /// The bytes the coordinator's signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(CHALLENGE_DOMAIN);
        w.field(&self.public_key.to_bytes())
            .field(self.nonce_hex.as_bytes())
            .field(&self.expires_at.timestamp_micros().to_be_bytes());
        w.finish()
    }

    /// The nonce bytes; `Invalid` unless `nonce_hex` is exactly 64 hex digits.
    pub fn nonce(&self) -> Result<[u8; ATTESTATION_NONCE_LEN], Error> {
        let mut out = [0u8; ATTESTATION_NONCE_LEN];
        hex::decode_to_slice(&self.nonce_hex, &mut out).map_err(|_| {
            Error::invalid(
                "attestation challenge",
                format!("nonce must be {} hex digits", ATTESTATION_NONCE_LEN * 2),
            )
        })?;
        Ok(out)
    }

    /// Checks that `coordinator` signed this challenge and that it has not expired at `now`.
    pub fn verify(&self, coordinator: &PublicKey, now: Timestamp) -> Result<(), Error> {
        coordinator
            .verify(&self.canonical_bytes(), &self.coordinator_signature)
            .map_err(|_| {
                Error::invalid(
                    "attestation challenge",
                    "not issued by this coordinator; fetch a new one",
                )
            })?;
        if now > self.expires_at {
            return Err(Error::invalid(
                "attestation challenge",
                "expired; fetch a new one",
            ));
        }
        self.nonce().map(|_| ())
    }
}

/// What a node registers with: the challenge it answered and the per-device outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegistrationAttestation {
    /// The coordinator's challenge.
    pub challenge: AttestationChallenge,
    /// The host's answer.
    pub result: HostAttestation,
}

/// The nonce embedded in an NVIDIA GPU attestation report: the report opens with the SPDM
/// `GET_MEASUREMENTS` request (version, code `0xE0`, two parameters, the 32-byte nonce, the
/// slot id). `None` when the bytes do not start with such a request.
pub fn report_nonce(report: &[u8]) -> Option<[u8; ATTESTATION_NONCE_LEN]> {
    if report.len() < SPDM_REQUEST_LEN || report[1] != SPDM_GET_MEASUREMENTS {
        return None;
    }
    let mut nonce = [0u8; ATTESTATION_NONCE_LEN];
    nonce.copy_from_slice(&report[4..4 + ATTESTATION_NONCE_LEN]);
    Some(nonce)
}

/// The coordinator's reading of one device's attestation, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceAttestationSummary {
    /// The device's UUID.
    pub uuid: String,
    /// `report` (a report over the coordinator's nonce was checked in) or `not_available`.
    pub status: String,
    /// For `not_available`: the agent's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Report size, bytes (for `report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_bytes: Option<u64>,
}

/// The coordinator's reading of a node's registration attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttestationSummary {
    /// `report` (at least one device sent a report), `not_available` (none did, or the host
    /// has no NVML) or `not_requested` (the agent registered without answering a challenge).
    pub status: String,
    /// Why no device attested, where the host said so as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per device.
    pub devices: Vec<DeviceAttestationSummary>,
    /// Every report embeds the nonce of a challenge this coordinator issued (checked at
    /// registration).
    pub nonce_bound: bool,
    /// Always `false`: the report signatures and certificate chains are not verified by the
    /// coordinator (see the module docs); fetch the evidence to verify it with NVIDIA's tools.
    pub signature_verified: bool,
}

impl RegistrationAttestation {
    /// Checks an attestation a node registers with, for a node with key `node_key` whose GPUs
    /// have `gpu_uuids`: the challenge is signed by `coordinator`, issued to `node_key` and not
    /// expired at `now`; each device named
    /// once and among `gpu_uuids`; each report is hex, 37 bytes to
    /// [`MAX_ATTESTATION_REPORT_LEN`], and embeds the challenge nonce; CEC reports are hex and
    /// at most [`MAX_CEC_REPORT_LEN`] bytes; reasons are at most [`MAX_REASON_LEN`] bytes.
    pub fn check(
        &self,
        coordinator: &PublicKey,
        node_key: &PublicKey,
        now: Timestamp,
        gpu_uuids: &[&str],
    ) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::invalid("attestation", reason));
        self.challenge.verify(coordinator, now)?;
        if self.challenge.public_key != *node_key {
            return bad("the challenge was issued to another node key".into());
        }
        let nonce = self.challenge.nonce()?;
        let devices = match &self.result {
            HostAttestation::NotAvailable { reason } => {
                return if reason.len() > MAX_REASON_LEN {
                    bad("reason is too long".into())
                } else {
                    Ok(())
                };
            }
            HostAttestation::Devices { devices } => devices,
        };
        let mut seen = std::collections::HashSet::new();
        for d in devices {
            if !gpu_uuids.contains(&d.uuid.as_str()) {
                return bad(format!(
                    "device {:?} is not one of the registered GPUs",
                    d.uuid
                ));
            }
            if !seen.insert(d.uuid.as_str()) {
                return bad(format!("device {:?} is listed twice", d.uuid));
            }
            match &d.attestation {
                Attestation::NotAvailable { reason } if reason.len() > MAX_REASON_LEN => {
                    return bad("reason is too long".into())
                }
                Attestation::NotAvailable { .. } => {}
                Attestation::Report {
                    report_hex,
                    cec_report_hex,
                } => {
                    if report_hex.len() > 2 * MAX_ATTESTATION_REPORT_LEN {
                        return bad(format!("the report of {:?} is too large", d.uuid));
                    }
                    let report = hex::decode(report_hex)
                        .map_err(|_| Error::invalid("attestation", "report_hex is not hex"))?;
                    match report_nonce(&report) {
                        Some(n) if n == nonce => {}
                        Some(_) => {
                            return bad(format!(
                                "the report of {:?} is not over the challenge nonce",
                                d.uuid
                            ))
                        }
                        None => {
                            return bad(format!(
                                "the report of {:?} does not start with an SPDM GET_MEASUREMENTS request",
                                d.uuid
                            ))
                        }
                    }
                    if let Some(cec) = cec_report_hex {
                        if cec.len() > 2 * MAX_CEC_REPORT_LEN || hex::decode(cec).is_err() {
                            return bad(format!(
                                "the CEC report of {:?} is not hex of at most {MAX_CEC_REPORT_LEN} bytes",
                                d.uuid
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The API's summary of an attestation already accepted by [`RegistrationAttestation::check`].
    pub fn summary(&self) -> AttestationSummary {
        match &self.result {
            HostAttestation::NotAvailable { reason } => AttestationSummary {
                status: "not_available".into(),
                reason: Some(reason.clone()),
                devices: Vec::new(),
                nonce_bound: false,
                signature_verified: false,
            },
            HostAttestation::Devices { devices } => {
                let devices: Vec<DeviceAttestationSummary> = devices
                    .iter()
                    .map(|d| match &d.attestation {
                        Attestation::Report { report_hex, .. } => DeviceAttestationSummary {
                            uuid: d.uuid.clone(),
                            status: "report".into(),
                            reason: None,
                            report_bytes: Some(report_hex.len() as u64 / 2),
                        },
                        Attestation::NotAvailable { reason } => DeviceAttestationSummary {
                            uuid: d.uuid.clone(),
                            status: "not_available".into(),
                            reason: Some(reason.clone()),
                            report_bytes: None,
                        },
                    })
                    .collect();
                let any_report = devices.iter().any(|d| d.status == "report");
                AttestationSummary {
                    status: if any_report {
                        "report"
                    } else {
                        "not_available"
                    }
                    .into(),
                    reason: None,
                    devices,
                    nonce_bound: any_report,
                    signature_verified: false,
                }
            }
        }
    }
}

impl AttestationSummary {
    /// The summary of a node that registered without answering a challenge.
    pub fn not_requested() -> Self {
        Self {
            status: "not_requested".into(),
            reason: Some("the agent registered without answering an attestation challenge".into()),
            devices: Vec::new(),
            nonce_bound: false,
            signature_verified: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn node() -> PublicKey {
        PublicKey::of(&SigningKey::from_bytes(&[3; 32]))
    }

    fn spdm_report(nonce: &[u8; 32]) -> Vec<u8> {
        let mut r = vec![0x11, SPDM_GET_MEASUREMENTS, 0x01, 0xff];
        r.extend_from_slice(nonce);
        r.push(0x00);
        r.extend_from_slice(&[0x11, 0x60, 0, 0, 3]); // the start of a response
        r
    }

    fn with_report(challenge: AttestationChallenge, report: Vec<u8>) -> RegistrationAttestation {
        RegistrationAttestation {
            challenge,
            result: HostAttestation::Devices {
                devices: vec![DeviceAttestation {
                    uuid: "GPU-a".into(),
                    attestation: Attestation::Report {
                        report_hex: hex::encode(report),
                        cec_report_hex: None,
                    },
                }],
            },
        }
    }

    #[test]
    fn a_report_over_the_challenge_nonce_is_accepted() {
        let now = crate::time::now();
        let nonce = [9u8; 32];
        let c = AttestationChallenge::signed(
            &key(),
            node(),
            nonce,
            now + chrono::TimeDelta::minutes(5),
        );
        let a = with_report(c, spdm_report(&nonce));
        a.check(&PublicKey::of(&key()), &node(), now, &["GPU-a"])
            .unwrap();
        let e = a
            .check(
                &PublicKey::of(&key()),
                &PublicKey::of(&key()),
                now,
                &["GPU-a"],
            )
            .unwrap_err();
        assert!(e.to_string().contains("another node key"), "{e}");
        let s = a.summary();
        assert_eq!(s.status, "report");
        assert!(s.nonce_bound && !s.signature_verified);
        assert_eq!(s.devices[0].report_bytes, Some(42));
    }

    #[test]
    fn wrong_nonce_foreign_challenge_expiry_and_unknown_devices_are_refused() {
        let now = crate::time::now();
        let later = now + chrono::TimeDelta::minutes(5);
        let nonce = [9u8; 32];
        let pk = PublicKey::of(&key());
        let c = AttestationChallenge::signed(&key(), node(), nonce, later);

        let replayed = with_report(c.clone(), spdm_report(&[1u8; 32]));
        let e = replayed.check(&pk, &node(), now, &["GPU-a"]).unwrap_err();
        assert!(
            e.to_string().contains("not over the challenge nonce"),
            "{e}"
        );

        let garbage = with_report(c.clone(), vec![0u8; 64]);
        assert!(garbage.check(&pk, &node(), now, &["GPU-a"]).is_err());

        let other = SigningKey::from_bytes(&[8; 32]);
        let foreign = with_report(
            AttestationChallenge::signed(&other, node(), nonce, later),
            spdm_report(&nonce),
        );
        let e = foreign.check(&pk, &node(), now, &["GPU-a"]).unwrap_err();
        assert!(
            e.to_string().contains("not issued by this coordinator"),
            "{e}"
        );

        let ok = with_report(c.clone(), spdm_report(&nonce));
        let e = ok
            .check(
                &pk,
                &node(),
                later + chrono::TimeDelta::seconds(1),
                &["GPU-a"],
            )
            .unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(ok.check(&pk, &node(), now, &["GPU-b"]).is_err());

        // A tampered nonce field breaks the coordinator's signature.
        let mut tampered = ok.clone();
        tampered.challenge.nonce_hex = hex::encode([1u8; 32]);
        assert!(tampered.check(&pk, &node(), now, &["GPU-a"]).is_err());
    }

    #[test]
    fn not_available_is_summarised_with_its_reason() {
        let now = crate::time::now();
        let c = AttestationChallenge::signed(
            &key(),
            node(),
            [1; 32],
            now + chrono::TimeDelta::minutes(1),
        );
        let a = RegistrationAttestation {
            challenge: c,
            result: HostAttestation::NotAvailable {
                reason: "libnvidia-ml.so.1 not found".into(),
            },
        };
        a.check(&PublicKey::of(&key()), &node(), now, &[]).unwrap();
        let s = a.summary();
        assert_eq!(s.status, "not_available");
        assert_eq!(s.reason.as_deref(), Some("libnvidia-ml.so.1 not found"));
        assert!(!s.nonce_bound);
    }
}
