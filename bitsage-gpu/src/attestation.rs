//! NVML's confidential-compute attestation report, as a [`bitsage_core::attestation`] value.

use bitsage_core::attestation::Attestation;

/// One device's NVML report as an [`Attestation`]: lower-case hex, with the CEC report where
/// NVML says one is present; an empty report is `not_available`.
pub(crate) fn from_nvml(
    r: &nvml_wrapper::structs::device::ConfidentialComputeGpuAttestationReport,
) -> Attestation {
    if r.attestation_report.is_empty() {
        return Attestation::not_available("NVML returned an empty attestation report");
    }
    Attestation::Report {
        report_hex: hex::encode(&r.attestation_report),
        cec_report_hex: (r.is_cec_attestation_report_present
            && !r.cec_attestation_report.is_empty())
        .then(|| hex::encode(&r.cec_attestation_report)),
    }
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
        let a = from_nvml(&r);
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
