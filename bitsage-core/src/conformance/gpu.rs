//! Conformance suite for [`GpuSource`].

use std::collections::HashSet;

use crate::gpu::{classify_tier, DeviceState, GpuSample};
use crate::{Error, GpuSource};

/// Runs every check.
pub async fn run_all(src: &dyn GpuSource) {
    inventory_and_samples_agree(src).await;
    one_sample_per_device(src).await;
    tiers_follow_the_table(src).await;
    host_is_plausible(src).await;
}

fn check_ratio(what: &str, uuid: &str, v: Option<f64>) {
    if let Some(v) = v {
        assert!(
            (0.0..=1.0).contains(&v),
            "{what} of {uuid} is {v}, outside 0..=1"
        );
    }
}

fn check_sample(s: &GpuSample) {
    check_ratio("gpu_utilization_ratio", &s.uuid, s.gpu_utilization_ratio);
    check_ratio(
        "memory_utilization_ratio",
        &s.uuid,
        s.memory_utilization_ratio,
    );
    for (what, v) in [
        ("temperature_celsius", s.temperature_celsius),
        ("power_watts", s.power_watts),
        ("energy_joules_total", s.energy_joules_total),
    ] {
        if let Some(v) = v {
            assert!(v.is_finite() && v >= 0.0, "{what} of {} is {v}", s.uuid);
        }
    }
    if let Some(v) = s.temperature_celsius {
        assert!(v < 200.0, "temperature of {} is {v} °C", s.uuid);
    }
    if s.state == DeviceState::Lost {
        assert!(
            s.gpu_utilization_ratio.is_none() && s.memory_used_bytes.is_none(),
            "a lost device {} must not report metrics",
            s.uuid
        );
    }
}

/// The inventory has unique, non-empty UUIDs; every sample names an inventory device and holds
/// plausible values; an unavailable source is unavailable for both calls.
pub async fn inventory_and_samples_agree(src: &dyn GpuSource) {
    let inventory = src.inventory().await;
    let samples = src.sample().await;
    match (inventory, samples) {
        (Ok(inv), Ok(samples)) => {
            let uuids: HashSet<&str> = inv.devices.iter().map(|d| d.uuid.as_str()).collect();
            assert_eq!(
                uuids.len(),
                inv.devices.len(),
                "device UUIDs must be unique"
            );
            assert!(!uuids.contains(""), "a device has an empty UUID");
            for s in &samples {
                assert!(
                    uuids.contains(s.uuid.as_str()),
                    "sample for {} which is not in the inventory",
                    s.uuid
                );
                check_sample(s);
            }
            for d in &inv.devices {
                if let (Some(total), Some(s)) = (
                    d.memory_total_bytes,
                    samples.iter().find(|s| s.uuid == d.uuid),
                ) {
                    if let Some(used) = s.memory_used_bytes {
                        assert!(used <= total, "{} uses more memory than it has", d.uuid);
                    }
                }
            }
        }
        (Err(Error::Unavailable { reason, .. }), Err(Error::Unavailable { .. })) => {
            assert!(!reason.trim().is_empty(), "unavailable without a reason");
        }
        (inv, samples) => panic!(
            "{}: inventory and sample disagree on availability: {:?} / {:?}",
            src.name(),
            inv.map(|i| i.devices.len()),
            samples.map(|s| s.len())
        ),
    }
}

/// Every device of the inventory gets exactly one reading per `sample()` call, and no device
/// is read twice (a lost device is reported with its state, not dropped).
pub async fn one_sample_per_device(src: &dyn GpuSource) {
    let (Ok(inv), Ok(samples)) = (src.inventory().await, src.sample().await) else {
        return; // availability agreement is checked by `inventory_and_samples_agree`
    };
    let mut seen = HashSet::new();
    for s in &samples {
        assert!(
            seen.insert(s.uuid.as_str()),
            "{}: two samples in one call",
            s.uuid
        );
    }
    for d in &inv.devices {
        assert!(
            seen.contains(d.uuid.as_str()),
            "{}: device {} has no sample",
            src.name(),
            d.uuid
        );
    }
}

/// A tier in the inventory is the one the documented table gives for the device's name and
/// framebuffer ([`classify_tier`]); a source never claims a tier the table does not support.
pub async fn tiers_follow_the_table(src: &dyn GpuSource) {
    let Ok(inv) = src.inventory().await else {
        return;
    };
    for d in &inv.devices {
        if let Some(tier) = d.tier {
            assert_eq!(
                Some(tier),
                classify_tier(&d.name, d.memory_total_bytes),
                "{}: tier of {} ({}) does not follow the table",
                src.name(),
                d.uuid,
                d.name
            );
        }
    }
}

/// The host report, when available, is plausible.
pub async fn host_is_plausible(src: &dyn GpuSource) {
    match src.host().await {
        Ok(h) => {
            assert!(h.logical_cores >= 1, "a host has at least one core");
            assert!(h.memory_total_bytes > 0, "a host has memory");
            if let Some(avail) = h.memory_available_bytes {
                assert!(
                    avail <= h.memory_total_bytes,
                    "more memory available than total"
                );
            }
        }
        Err(Error::Unavailable { reason, .. }) => assert!(!reason.is_empty()),
        Err(e) => panic!("host(): unexpected error {e}"),
    }
}
