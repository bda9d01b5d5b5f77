//! Confidential-compute attestation for registration: NVML's GPU attestation report for a
//! coordinator-chosen nonce, or an honest "not available" with the reason.

use serde::{Deserialize, Serialize};

/// The nonce length NVML's attestation call takes (`NVML_CC_GPU_CEC_NONCE_SIZE`), bytes.
pub const ATTESTATION_NONCE_LEN: usize = 32;

/// One device's attestation outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Attestation {
    /// NVML returned a report (confidential-compute mode is on).
    Report {
        /// The GPU attestation report, lower-case hex (it embeds the nonce; the coordinator
        /// verifies it against NVIDIA's certificate chain).
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

    pub(crate) fn from_nvml(
        r: &nvml_wrapper::structs::device::ConfidentialComputeGpuAttestationReport,
    ) -> Self {
        if r.attestation_report.is_empty() {
            return Self::not_available("NVML returned an empty attestation report");
        }
        Attestation::Report {
            report_hex: to_hex(&r.attestation_report),
            cec_report_hex: (r.is_cec_attestation_report_present
                && !r.cec_attestation_report.is_empty())
            .then(|| to_hex(&r.cec_attestation_report)),
        }
    }
}

/// One device's attestation, keyed by its UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAttestation {
    /// The device's UUID.
    pub uuid: String,
    /// Its outcome.
    pub attestation: Attestation,
}

/// A host's attestation answer for registration: one outcome per device, or why there is
/// none at all (no NVML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_hex_and_serialise_with_a_status() {
        let r = nvml_wrapper::structs::device::ConfidentialComputeGpuAttestationReport {
            attestation_report_size: 3,
            attestation_report: vec![0x00, 0xab, 0xff],
            is_cec_attestation_report_present: false,
            cec_attestation_report_size: 0,
            cec_attestation_report: vec![],
        };
        let a = Attestation::from_nvml(&r);
        assert_eq!(
            a,
            Attestation::Report {
                report_hex: "00abff".into(),
                cec_report_hex: None
            }
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["status"], "report");
        let na = serde_json::to_value(Attestation::not_available("off")).unwrap();
        assert_eq!(
            na,
            serde_json::json!({"status": "not_available", "reason": "off"})
        );
    }
}
