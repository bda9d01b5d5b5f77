//! Nodes (workers), their status history and heartbeats.

use serde::{Deserialize, Serialize};

use crate::address::WalletAddress;
use crate::crypto::{Hash32, PublicKey};
use crate::gpu::{GpuDevice, HostInfo};
use crate::ids::NodeId;
use crate::lifecycle::NodeStatus;
use crate::time::Timestamp;

/// What a node reports about its hardware when it registers. Unknown fields are refused
/// (it is stored as sent); [`HardwareReport::validate`] bounds every field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HardwareReport {
    /// Its GPUs (empty on a GPU-less host).
    #[serde(default)]
    pub gpus: Vec<GpuDevice>,
    /// The host (CPU, memory).
    #[serde(default)]
    pub host: Option<HostInfo>,
    /// Why GPU data is missing, when it is (e.g. "NVML library not found").
    #[serde(default)]
    pub gpu_unavailable_reason: Option<String>,
    /// The GPU kernel driver version, where a GPU library answered.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// The CUDA driver API version, where a GPU library answered.
    #[serde(default)]
    pub cuda_version: Option<String>,
    /// A digest of the hardware identity (GPU UUIDs, CPU model, ...).
    #[serde(default)]
    pub hardware_hash: Option<Hash32>,
    /// The answer to the coordinator's attestation challenge: per GPU, NVML's
    /// confidential-compute report over the challenge nonce or why there is none. `None` when
    /// the agent registered without a challenge.
    #[serde(default)]
    pub attestation: Option<crate::attestation::RegistrationAttestation>,
}

/// Most GPUs one registration may report.
pub const MAX_GPUS: usize = 64;
/// Longest identifier-like text in a hardware report (UUID, name, PCI bus id, versions, CPU
/// model), characters.
pub const MAX_HARDWARE_TEXT_LEN: usize = 256;

/// Checks that `value` has at most `max` characters and no control characters.
pub(crate) fn check_text(what: &'static str, value: &str, max: usize) -> crate::Result<()> {
    if value.chars().count() > max {
        return Err(crate::Error::invalid(
            what,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(crate::Error::invalid(what, "contains control characters"));
    }
    Ok(())
}

impl HardwareReport {
    /// Bounds every field, so what a registration stores is small whatever a client sends:
    /// at most [`MAX_GPUS`] GPUs, texts up to [`MAX_HARDWARE_TEXT_LEN`] characters (reasons
    /// up to [`crate::attestation::MAX_REASON_LEN`]). The attestation evidence is bounded by
    /// [`crate::attestation::RegistrationAttestation::check`].
    pub fn validate(&self) -> crate::Result<()> {
        if self.gpus.len() > MAX_GPUS {
            return Err(crate::Error::invalid(
                "hardware report",
                format!("lists {} GPUs; at most {MAX_GPUS}", self.gpus.len()),
            ));
        }
        for g in &self.gpus {
            check_text("GPU uuid", &g.uuid, MAX_HARDWARE_TEXT_LEN)?;
            check_text("GPU name", &g.name, MAX_HARDWARE_TEXT_LEN)?;
            if let Some(p) = &g.pci_bus_id {
                check_text("GPU PCI bus id", p, MAX_HARDWARE_TEXT_LEN)?;
            }
        }
        if let Some(h) = &self.host {
            if let Some(m) = &h.cpu_model {
                check_text("CPU model", m, MAX_HARDWARE_TEXT_LEN)?;
            }
        }
        if let Some(r) = &self.gpu_unavailable_reason {
            check_text(
                "GPU unavailable reason",
                r,
                crate::attestation::MAX_REASON_LEN,
            )?;
        }
        if let Some(v) = &self.driver_version {
            check_text("driver version", v, MAX_HARDWARE_TEXT_LEN)?;
        }
        if let Some(v) = &self.cuda_version {
            check_text("CUDA version", v, MAX_HARDWARE_TEXT_LEN)?;
        }
        // Attestation evidence is bounded by its own check (`RegistrationAttestation::check`).
        Ok(())
    }

    /// What the coordinator checked of the attestation this report carries
    /// (`not_requested` when it carries none).
    pub fn attestation_summary(&self) -> crate::attestation::AttestationSummary {
        self.attestation
            .as_ref()
            .map_or_else(crate::attestation::AttestationSummary::not_requested, |a| {
                a.summary()
            })
    }
}

/// A node to register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewNode {
    /// Its id.
    pub id: NodeId,
    /// Its ed25519 key: every heartbeat and result must be signed by it.
    pub public_key: PublicKey,
    /// The wallet it earns for.
    pub wallet: WalletAddress,
    /// Its hardware.
    pub hardware: HardwareReport,
    /// The agent's version string.
    pub agent_version: String,
    /// Registration time.
    pub registered_at: Timestamp,
    /// When the wallet account's signature was checked on chain; `None`: unverified.
    #[serde(default)]
    pub wallet_proven_at: Option<Timestamp>,
}

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its id.
    pub id: NodeId,
    /// Its key.
    pub public_key: PublicKey,
    /// Its wallet.
    pub wallet: WalletAddress,
    /// Its hardware as last reported.
    pub hardware: HardwareReport,
    /// The agent's version.
    pub agent_version: String,
    /// Current lifecycle status.
    pub status: NodeStatus,
    /// Why it is in that status.
    pub status_reason: String,
    /// When the status last changed.
    pub status_changed_at: Timestamp,
    /// Registration time.
    pub registered_at: Timestamp,
    /// When the wallet account's signature was checked on chain; `None`: unverified.
    #[serde(default)]
    pub wallet_proven_at: Option<Timestamp>,
}

impl NodeRecord {
    /// Whether the node's wallet is proven ([`crate::wallet::WalletStatus`]).
    pub fn wallet_status(&self) -> crate::wallet::WalletStatus {
        match self.wallet_proven_at {
            Some(_) => crate::wallet::WalletStatus::Proven,
            None => crate::wallet::WalletStatus::Unverified,
        }
    }
}

/// One recorded status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusChange {
    /// The node.
    pub node_id: NodeId,
    /// Status before.
    pub from: NodeStatus,
    /// Status after.
    pub to: NodeStatus,
    /// Why.
    pub reason: String,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub at: Timestamp,
}

/// Filters for listing nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Only nodes in this status.
    pub status: Option<NodeStatus>,
    /// Only nodes earning for this wallet.
    pub wallet: Option<WalletAddress>,
}

/// A heartbeat as stored (after its signature was checked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node.
    pub node_id: NodeId,
    /// When the coordinator received it.
    pub at: Timestamp,
    /// The node's monotonically increasing counter (replay protection).
    pub sequence: u64,
    /// The 1-minute host load the node reported.
    #[serde(default)]
    pub load_average_1m: Option<f64>,
    /// The agent's version.
    pub agent_version: String,
    /// The health of the agent's GPU collector, where the agent reported it (stored as the
    /// node's latest; a heartbeat without it clears it).
    #[serde(default)]
    pub gpu_collector: Option<crate::gpu::GpuCollectorStatus>,
    /// The GPU readings the heartbeat carried: stored with it, in the same transaction.
    #[serde(default)]
    pub gpu_samples: Vec<crate::gpu::GpuSample>,
}

/// How much of a window a node was up, from its heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uptime {
    /// The window.
    pub window: crate::time::TimeWindow,
    /// Heartbeats counted.
    pub heartbeats: u64,
    /// Seconds of the window covered (each heartbeat covers one interval after it).
    pub covered_seconds: f64,
    /// `covered_seconds / window length`, 0–1 (0 for an empty window).
    pub ratio: f64,
}

/// Computes uptime over `window` from heartbeat times: each heartbeat at `t` covers
/// `[t, t + interval)`, and the union of those, clipped to the window, is the time up.
/// `times` may be unsorted and may include heartbeats before the window.
pub fn uptime_from_heartbeats(
    window: crate::time::TimeWindow,
    interval: std::time::Duration,
    times: &[Timestamp],
) -> Uptime {
    let interval = chrono::TimeDelta::from_std(interval).unwrap_or(chrono::TimeDelta::MAX);
    let mut sorted: Vec<Timestamp> = times.to_vec();
    sorted.sort_unstable();
    let mut covered = chrono::TimeDelta::zero();
    let mut cursor = window.from; // everything before `cursor` is already counted
    let mut counted = 0u64;
    for t in sorted {
        if window.contains(t) {
            counted += 1;
        }
        let start = t.max(cursor);
        let end = t
            .checked_add_signed(interval)
            .unwrap_or(window.to)
            .min(window.to);
        if end > start {
            covered += end - start;
            cursor = end;
        }
    }
    let total = (window.to - window.from)
        .num_microseconds()
        .unwrap_or(i64::MAX) as f64;
    let covered_us = covered.num_microseconds().unwrap_or(i64::MAX) as f64;
    Uptime {
        window,
        heartbeats: counted,
        covered_seconds: covered_us / 1e6,
        ratio: if total > 0.0 {
            (covered_us / total).min(1.0)
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TimeWindow;
    use chrono::{TimeDelta, TimeZone, Utc};

    #[test]
    fn uptime_unions_overlapping_intervals() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let w = TimeWindow::new(t0, t0 + TimeDelta::seconds(100)).unwrap();
        let s = |x: i64| t0 + TimeDelta::seconds(x);
        // 10-s interval; beats at -5 (covers 0..5), 0, 5 (overlap), 50; 95 (covers 95..100).
        let u = uptime_from_heartbeats(
            w,
            std::time::Duration::from_secs(10),
            &[s(50), s(-5), s(0), s(5), s(95)],
        );
        assert_eq!(u.heartbeats, 4);
        assert!(
            (u.covered_seconds - 30.0).abs() < 1e-9,
            "{}",
            u.covered_seconds
        );
        assert!((u.ratio - 0.3).abs() < 1e-9);
        let none = uptime_from_heartbeats(w, std::time::Duration::from_secs(10), &[]);
        assert_eq!(none.ratio, 0.0);
    }
}
