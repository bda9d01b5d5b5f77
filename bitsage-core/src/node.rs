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

/// The serving runtime a node's agent is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The agent's own prover only (the default).
    #[default]
    Native,
    /// Ollama.
    Ollama,
    /// vLLM.
    Vllm,
    /// NVIDIA TensorRT-LLM.
    Tensorrtllm,
    /// Hugging Face Text Generation Inference.
    Tgi,
}

impl Runtime {
    /// Every runtime.
    pub const ALL: [Runtime; 5] = [
        Runtime::Native,
        Runtime::Ollama,
        Runtime::Vllm,
        Runtime::Tensorrtllm,
        Runtime::Tgi,
    ];

    /// The lowercase name used in JSON, storage and configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Ollama => "ollama",
            Runtime::Vllm => "vllm",
            Runtime::Tensorrtllm => "tensorrtllm",
            Runtime::Tgi => "tgi",
        }
    }

    /// Parses [`Runtime::as_str`].
    pub fn parse(s: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                    "runtime",
                    format!("unknown runtime {s:?}; one of native, ollama, vllm, tensorrtllm, tgi"),
                )
            })
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest region name, characters.
pub const MAX_REGION_LEN: usize = 32;
/// Longest energy tag, characters.
pub const MAX_ENERGY_TAG_LEN: usize = 32;
/// Most labels on one node.
pub const MAX_LABELS: usize = 16;
/// Longest label key or value, characters.
pub const MAX_LABEL_LEN: usize = 63;

/// Checks a slug-like name: 1 ..= `max` characters of `a-z`, `0-9`, `-` and `_`, starting
/// with a letter or digit.
fn check_slug(what: &'static str, value: &str, max: usize) -> crate::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            what,
            format!(
                "must be 1 to {max} characters of lowercase letters, digits, '-' and '_', \
                 starting with a letter or digit"
            ),
        ))
    }
}

/// Checks a region name (e.g. `eu-west`, `us-east-1`).
pub fn check_region(region: &str) -> crate::Result<()> {
    check_slug("region", region, MAX_REGION_LEN)
}

/// Checks an energy tag (e.g. `renewable`, `grid`).
pub fn check_energy_tag(tag: &str) -> crate::Result<()> {
    check_slug("energy tag", tag, MAX_ENERGY_TAG_LEN)
}

/// Checks a label key: 1 ..= [`MAX_LABEL_LEN`] characters of `a-z`, `0-9`, `-`, `_`, `.`
/// and `/` (as in `gpu.tier` or `example.com/pool`).
pub fn check_label_key(key: &str) -> crate::Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_LABEL_LEN
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b'/')
        });
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            "label key",
            format!(
                "must be 1 to {MAX_LABEL_LEN} characters of lowercase letters, digits, '-', \
                 '_', '.' and '/'"
            ),
        ))
    }
}

/// Where a node runs and what it serves with, from the agent's configuration: shown to
/// operators and filterable, never used to decide trust.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeProfile {
    /// The region the operator places it in (e.g. `eu-west`); `null` when not configured.
    #[serde(default)]
    pub region: Option<String>,
    /// The serving runtime (default `native`).
    #[serde(default)]
    pub runtime: Runtime,
    /// Free-form labels (`key: value`), at most [`MAX_LABELS`].
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The operator's energy tag (e.g. `renewable`); `null` when not configured.
    #[serde(default)]
    pub energy_tag: Option<String>,
}

impl NodeProfile {
    /// Checks every field: region and energy tag are slugs, at most [`MAX_LABELS`] labels
    /// with valid keys and printable values of at most [`MAX_LABEL_LEN`] characters.
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(r) = &self.region {
            check_region(r)?;
        }
        if let Some(t) = &self.energy_tag {
            check_energy_tag(t)?;
        }
        if self.labels.len() > MAX_LABELS {
            return Err(crate::Error::invalid(
                "labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        for (k, v) in &self.labels {
            check_label_key(k)?;
            check_text("label value", v, MAX_LABEL_LEN)?;
        }
        Ok(())
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
    /// Region, runtime, labels and energy tag from the agent's configuration.
    #[serde(default)]
    pub profile: NodeProfile,
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
    /// Region, runtime, labels and energy tag as last registered.
    #[serde(default)]
    pub profile: NodeProfile,
    /// The network's reputation of it as last computed (`None`: not yet).
    #[serde(default)]
    pub reputation: Option<crate::reputation::Reputation>,
    /// Set while the node is drained for maintenance.
    #[serde(default)]
    pub drain: Option<Drain>,
}

/// A drain: the node takes no new lease (the current one finishes) until `until`, and the
/// time it is silent meanwhile is not counted against its uptime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Drain {
    /// Why (the operator's words).
    pub reason: String,
    /// Who drained it.
    pub by: String,
    /// Since when.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub since: Timestamp,
    /// Until when (bounded by policy); the drain ends by itself then.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub until: Timestamp,
}

impl Drain {
    /// Whether the drain holds at `now`.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.since <= now && now < self.until
    }
}

impl NodeRecord {
    /// Its reputation R, when computed and with evidence.
    pub fn reputation_score(&self) -> Option<u32> {
        self.reputation.as_ref().and_then(|r| r.score)
    }

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

/// Filters for listing nodes; every given filter must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Only nodes in this status.
    pub status: Option<NodeStatus>,
    /// Only nodes earning for this wallet.
    pub wallet: Option<WalletAddress>,
    /// Only nodes in this region.
    pub region: Option<String>,
    /// Only nodes with this runtime.
    pub runtime: Option<Runtime>,
    /// Only nodes carrying this label with this value.
    pub label: Option<(String, String)>,
    /// Only nodes with this energy tag.
    pub energy_tag: Option<String>,
    /// Only nodes whose reputation R is at least this (nodes without one are left out).
    pub reputation_min: Option<u32>,
    /// Only nodes whose reputation R is at most this (nodes without one are left out).
    pub reputation_max: Option<u32>,
}

impl NodeFilter {
    /// Only nodes in `status`.
    pub fn status(status: NodeStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    /// Whether `node` passes every filter (the in-memory store's, and a reference for SQL).
    pub fn matches(&self, node: &NodeRecord) -> bool {
        self.status.is_none_or(|s| node.status == s)
            && self.wallet.is_none_or(|w| node.wallet == w)
            && self
                .region
                .as_ref()
                .is_none_or(|r| node.profile.region.as_ref() == Some(r))
            && self.runtime.is_none_or(|r| node.profile.runtime == r)
            && self
                .label
                .as_ref()
                .is_none_or(|(k, v)| node.profile.labels.get(k) == Some(v))
            && self
                .energy_tag
                .as_ref()
                .is_none_or(|t| node.profile.energy_tag.as_ref() == Some(t))
            && self
                .reputation_min
                .is_none_or(|m| node.reputation_score().is_some_and(|r| r >= m))
            && self
                .reputation_max
                .is_none_or(|m| node.reputation_score().is_some_and(|r| r <= m))
    }
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

/// The UTC minute `t` falls in (Unix time / 60, rounded down): the key of the per-minute
/// heartbeat rollup.
pub fn minute_of(t: Timestamp) -> i64 {
    t.timestamp().div_euclid(60)
}

/// A span of whole UTC minutes, `first ..= last` ([`minute_of`] numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRange {
    /// The first minute.
    pub first: i64,
    /// The last minute (inclusive).
    pub last: i64,
}

impl MinuteRange {
    /// How many minutes the range holds (0 when `last < first`).
    pub fn len(&self) -> u64 {
        u64::try_from(self.last - self.first + 1).unwrap_or(0)
    }

    /// Whether the range holds no minute.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the per-minute heartbeat rollup holds for one node over a [`MinuteRange`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCoverage {
    /// Minutes in which the node heartbeated at least once.
    pub minutes_up: u64,
    /// Heartbeats in those minutes.
    pub heartbeats: u64,
}

/// How much of a window a node was up: the share of the minutes it existed in that carry a
/// heartbeat (from the per-minute rollup, never raw heartbeats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uptime {
    /// The window asked for.
    pub window: crate::time::TimeWindow,
    /// Where counting starts: the window's start or the node's registration, whichever is
    /// later (time before a node existed is not downtime).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub counted_from: Timestamp,
    /// Whole UTC minutes counted (the minute of `counted_from` through the window's last).
    pub minutes_counted: u64,
    /// Of those, minutes with at least one heartbeat.
    pub minutes_up: u64,
    /// Heartbeats in the counted minutes.
    pub heartbeats: u64,
    /// Minutes without a heartbeat while the node was drained for maintenance: left out of
    /// `minutes_counted`'s denominator.
    pub minutes_excused: u64,
    /// `minutes_up / (minutes_counted − minutes_excused)`, 0–1; `null` when no minute is
    /// counted (the node registered after the window, or was in maintenance throughout).
    pub ratio: Option<f64>,
}

/// The minutes of `window` a node registered at `registered_at` existed in: from the minute
/// of the later of the two starts through the minute of the window's last instant.
pub fn counted_minutes(window: crate::time::TimeWindow, registered_at: Timestamp) -> MinuteRange {
    let from = window.from.max(registered_at);
    if from >= window.to {
        return MinuteRange { first: 0, last: -1 };
    }
    let last_instant = window.to - chrono::TimeDelta::microseconds(1);
    MinuteRange {
        first: minute_of(from),
        last: minute_of(last_instant),
    }
}

/// Most minutes of maintenance one uptime window excuses (a day): drains are bounded, so
/// repeated drains cannot erase real downtime.
pub const MAX_EXCUSED_MINUTES: u64 = 24 * 60;

/// Uptime over `window` of a node registered at `registered_at`, from the rollup's
/// `coverage` of [`counted_minutes`], with `excused` minutes of maintenance without a
/// heartbeat left out, and the window's last minute left out when it is still in progress
/// and has no heartbeat yet (`open_minute_silent`).
pub fn uptime(
    window: crate::time::TimeWindow,
    registered_at: Timestamp,
    coverage: MinuteCoverage,
    excused: u64,
    open_minute_silent: bool,
) -> Uptime {
    let range = counted_minutes(window, registered_at);
    let counted = range.len() - u64::from(open_minute_silent && !range.is_empty());
    let up = coverage.minutes_up.min(counted);
    let excused = excused.min(counted - up);
    let judged = counted - excused;
    Uptime {
        window,
        counted_from: window.from.max(registered_at).min(window.to),
        minutes_counted: counted,
        minutes_up: up,
        heartbeats: coverage.heartbeats,
        minutes_excused: excused,
        ratio: (judged > 0).then(|| up as f64 / judged as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TimeWindow;
    use chrono::{TimeDelta, TimeZone, Utc};

    #[test]
    fn uptime_counts_from_registration() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let s = |x: i64| t0 + TimeDelta::seconds(x);
        let day = TimeWindow::new(s(30) - TimeDelta::days(1), s(30)).unwrap();
        // Registered 30 s ago and heartbeating since: one minute counted, one up.
        let u = uptime(
            day,
            s(0),
            MinuteCoverage {
                minutes_up: 1,
                heartbeats: 3,
            },
            0,
            false,
        );
        assert_eq!(u.minutes_counted, 1);
        assert_eq!(u.ratio, Some(1.0));
        assert_eq!(u.counted_from, s(0));
        // Registered 34 s before a window ending 2 minutes later: 3 minutes, 2 up.
        let w = TimeWindow::new(s(-86_400), s(150)).unwrap();
        let r = counted_minutes(w, s(-34));
        assert_eq!((r.first, r.last), (minute_of(s(-60)), minute_of(s(149))));
        assert_eq!(r.len(), 4);
        // Registered after the window: nothing counted, no ratio.
        let late = uptime(w, s(200), MinuteCoverage::default(), 0, false);
        // Drained and silent for 2 of 4 minutes, up 1: 1 of the 2 judged.
        let drained = uptime(
            w,
            s(-34),
            MinuteCoverage {
                minutes_up: 1,
                heartbeats: 1,
            },
            2,
            false,
        );
        assert_eq!((drained.minutes_excused, drained.ratio), (2, Some(0.5)));
        // A silent minute in progress is not counted yet.
        let open = uptime(
            w,
            s(-34),
            MinuteCoverage {
                minutes_up: 2,
                heartbeats: 2,
            },
            0,
            true,
        );
        assert_eq!((open.minutes_counted, open.ratio), (3, Some(2.0 / 3.0)));
        assert_eq!(late.minutes_counted, 0);
        assert_eq!(late.ratio, None);
        assert_eq!(
            minute_of(s(-1)),
            minute_of(t0) - 1,
            "floors before the epoch minute"
        );
    }
}
