//! Prometheus text exposition (format 0.0.4) of GPU readings: a pure function over the domain's
//! GPU types, used by the coordinator's `/metrics` route and the agent's GPU collector
//! (`bitsage_gpu::prometheus` adds the collector-snapshot conversion).
//!
//! Conventions: base units (bytes, watts, joules, hertz, seconds, °C), ratios in `0..=1`,
//! counters end in `_total`; every per-GPU series carries `node` and `uuid` labels; identity
//! lives in one `bitsage_gpu_info` series per GPU (value 1) so the other series stay small.
//! A metric a device did not report produces **no series** (never a 0). The collector's own
//! health is `bitsage_gpu_collector_*`.
//!
//! | family | type | from |
//! |---|---|---|
//! | `bitsage_gpu_info{node,uuid,index,name,pci_bus_id,driver_version,cuda_version,tier}` | gauge (1) | inventory |
//! | `bitsage_gpu_memory_total_bytes` | gauge | inventory |
//! | `bitsage_gpu_mig_enabled`, `bitsage_gpu_confidential_compute_enabled` | gauge (0/1) | inventory |
//! | `bitsage_gpu_state{state="ok"\|"lost"\|"no_permission"}` | gauge (0/1) | sample |
//! | `bitsage_gpu_utilization_ratio`, `bitsage_gpu_memory_utilization_ratio` | gauge | sample |
//! | `bitsage_gpu_memory_used_bytes`, `bitsage_gpu_memory_free_bytes` | gauge | sample |
//! | `bitsage_gpu_temperature_celsius`, `bitsage_gpu_power_watts` | gauge | sample |
//! | `bitsage_gpu_energy_joules_total` | counter | sample |
//! | `bitsage_gpu_sm_clock_hertz`, `bitsage_gpu_memory_clock_hertz` | gauge | sample |
//! | `bitsage_gpu_pcie_tx_bytes_per_second`, `bitsage_gpu_pcie_rx_bytes_per_second` | gauge | sample |
//! | `bitsage_gpu_pcie_replays_total` | counter | sample |
//! | `bitsage_gpu_ecc_errors_total{type="corrected"\|"uncorrected"}` | counter (volatile) | sample |
//! | `bitsage_gpu_xid_events`, `bitsage_gpu_last_xid_code` | gauge | sample (events since the previous sample) |
//! | `bitsage_gpu_compute_processes` | gauge | sample |
//! | `bitsage_gpu_collector_up{node}` | gauge (0/1) | collector |
//! | `bitsage_gpu_collector_last_sample_age_seconds{node}` | gauge | collector |
//! | `bitsage_gpu_collector_samples_total{node}`, `bitsage_gpu_collector_sample_errors_total{node}` | counter | collector |

use std::fmt::Write;

use crate::gpu::{DeviceState, GpuCollectorStatus, GpuInventory, GpuSample};

/// One node's GPU readings to render.
#[derive(Debug, Clone)]
pub struct NodeGpuMetrics<'a> {
    /// The node label value (the caller's node id).
    pub node: &'a str,
    /// The node's inventory, for `bitsage_gpu_info` and the static series.
    pub inventory: Option<&'a GpuInventory>,
    /// The node's latest samples.
    pub samples: &'a [GpuSample],
    /// The collector's health, where a collector runs for this node (or, on the
    /// coordinator, where the node's latest heartbeat reported it).
    pub collector: Option<GpuCollectorStatus>,
}

/// A sample value: integers stay exact (u64 counters above 2^53 survive).
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

/// Renders `nodes` as Prometheus text. Families appear once each, in a fixed order; series
/// follow the order of `nodes` and of their samples/devices.
pub fn render(nodes: &[NodeGpuMetrics<'_>]) -> String {
    let mut out = String::new();
    render_into(&mut out, nodes);
    out
}

/// [`render`], appending to `out` (for a `/metrics` handler that renders other families too).
pub fn render_into(out: &mut String, nodes: &[NodeGpuMetrics<'_>]) {
    // ---- identity and static properties (inventory)
    let devices = || {
        nodes.iter().flat_map(|n| {
            n.inventory
                .into_iter()
                .flat_map(move |inv| inv.devices.iter().map(move |d| (n.node, inv, d)))
        })
    };
    family(
        out,
        "bitsage_gpu_info",
        "gauge",
        "GPU identity (value 1): name, index, PCI bus id, driver and CUDA versions, staking tier.",
        devices().map(|(node, inv, d)| {
            let index = d.index.to_string();
            let tier = d.tier.map(|t| t.to_string());
            let labels = [
                ("node", Some(node)),
                ("uuid", Some(d.uuid.as_str())),
                ("index", Some(index.as_str())),
                ("name", Some(d.name.as_str()).filter(|n| !n.is_empty())),
                ("pci_bus_id", d.pci_bus_id.as_deref()),
                ("driver_version", inv.driver_version.as_deref()),
                ("cuda_version", inv.cuda_version.as_deref()),
                ("tier", tier.as_deref()),
            ];
            (label_set(&labels), Some(Value::Int(1)))
        }),
    );
    type DeviceGet = fn(&crate::gpu::GpuDevice) -> Option<Value>;
    let inventory_gauges: [(&str, &str, DeviceGet); 3] = [
        (
            "bitsage_gpu_memory_total_bytes",
            "Total framebuffer memory, bytes.",
            |d| d.memory_total_bytes.map(Value::from),
        ),
        (
            "bitsage_gpu_mig_enabled",
            "Whether MIG mode is enabled (1) or not (0).",
            |d| d.mig_enabled.map(Value::from),
        ),
        (
            "bitsage_gpu_confidential_compute_enabled",
            "Whether confidential-compute mode is on (1) or off (0).",
            |d| d.confidential_compute.map(Value::from),
        ),
    ];
    for (name, help, get) in inventory_gauges {
        family(
            out,
            name,
            "gauge",
            help,
            devices().map(|(node, _, d)| (gpu_labels(node, &d.uuid, None), get(d))),
        );
    }

    // ---- samples
    let samples = || {
        nodes
            .iter()
            .flat_map(|n| n.samples.iter().map(move |s| (n.node, s)))
    };
    family(
        out,
        "bitsage_gpu_state",
        "gauge",
        "Device state as the driver reports it (1 for the current state).",
        samples().flat_map(|(node, s)| {
            [
                (DeviceState::Ok, "ok"),
                (DeviceState::Lost, "lost"),
                (DeviceState::NoPermission, "no_permission"),
            ]
            .into_iter()
            .map(move |(state, label)| {
                (
                    gpu_labels(node, &s.uuid, Some(("state", label))),
                    Some(Value::from(s.state == state)),
                )
            })
        }),
    );
    type Get = fn(&GpuSample) -> Option<Value>;
    let per_sample: [(&str, &str, &str, Get); 14] = [
        (
            "bitsage_gpu_utilization_ratio",
            "gauge",
            "Share of time a kernel was running, 0-1.",
            |s| s.gpu_utilization_ratio.map(Value::from),
        ),
        (
            "bitsage_gpu_memory_utilization_ratio",
            "gauge",
            "Share of time device memory was read or written, 0-1.",
            |s| s.memory_utilization_ratio.map(Value::from),
        ),
        (
            "bitsage_gpu_memory_used_bytes",
            "gauge",
            "Framebuffer memory used, bytes.",
            |s| s.memory_used_bytes.map(Value::from),
        ),
        (
            "bitsage_gpu_memory_free_bytes",
            "gauge",
            "Framebuffer memory free, bytes.",
            |s| s.memory_free_bytes.map(Value::from),
        ),
        (
            "bitsage_gpu_temperature_celsius",
            "gauge",
            "GPU core temperature, degrees Celsius.",
            |s| s.temperature_celsius.map(Value::from),
        ),
        (
            "bitsage_gpu_power_watts",
            "gauge",
            "Power draw, watts.",
            |s| s.power_watts.map(Value::from),
        ),
        (
            "bitsage_gpu_energy_joules_total",
            "counter",
            "Energy consumed since the driver loaded, joules.",
            |s| s.energy_joules_total.map(Value::from),
        ),
        (
            "bitsage_gpu_sm_clock_hertz",
            "gauge",
            "SM clock, hertz.",
            |s| s.sm_clock_hz.map(Value::from),
        ),
        (
            "bitsage_gpu_memory_clock_hertz",
            "gauge",
            "Memory clock, hertz.",
            |s| s.memory_clock_hz.map(Value::from),
        ),
        (
            "bitsage_gpu_pcie_tx_bytes_per_second",
            "gauge",
            "PCIe transmit throughput, bytes per second.",
            |s| s.pcie_tx_bytes_per_second.map(Value::from),
        ),
        (
            "bitsage_gpu_pcie_rx_bytes_per_second",
            "gauge",
            "PCIe receive throughput, bytes per second.",
            |s| s.pcie_rx_bytes_per_second.map(Value::from),
        ),
        (
            "bitsage_gpu_pcie_replays_total",
            "counter",
            "PCIe replays.",
            |s| s.pcie_replays_total.map(Value::from),
        ),
        (
            "bitsage_gpu_xid_events",
            "gauge",
            "XID errors seen since the previous sample.",
            |s| s.xid_events.as_ref().map(|e| Value::Int(e.len() as u64)),
        ),
        (
            "bitsage_gpu_last_xid_code",
            "gauge",
            "Code of the latest XID error seen since the previous sample.",
            |s| s.xid_events.as_ref()?.last().map(|e| Value::Int(e.code)),
        ),
    ];
    for (name, kind, help, get) in per_sample {
        family(
            out,
            name,
            kind,
            help,
            samples().map(|(node, s)| (gpu_labels(node, &s.uuid, None), get(s))),
        );
    }
    family(
        out,
        "bitsage_gpu_ecc_errors_total",
        "counter",
        "ECC errors since the driver loaded (volatile), by type.",
        samples().flat_map(|(node, s)| {
            [
                ("corrected", s.ecc_corrected_total),
                ("uncorrected", s.ecc_uncorrected_total),
            ]
            .into_iter()
            .map(move |(t, v)| {
                (
                    gpu_labels(node, &s.uuid, Some(("type", t))),
                    v.map(Value::from),
                )
            })
        }),
    );
    family(
        out,
        "bitsage_gpu_compute_processes",
        "gauge",
        "Compute processes running on the GPU.",
        samples().map(|(node, s)| {
            (
                gpu_labels(node, &s.uuid, None),
                s.processes.as_ref().map(|p| Value::Int(p.len() as u64)),
            )
        }),
    );

    // ---- the collector
    let collectors = || {
        nodes.iter().filter_map(|n| {
            n.collector
                .as_ref()
                .map(|c| (label_set(&[("node", Some(n.node))]), c))
        })
    };
    family(
        out,
        "bitsage_gpu_collector_up",
        "gauge",
        "Whether the latest GPU sampling attempt succeeded.",
        collectors().map(|(l, c)| (l, Some(Value::from(c.up)))),
    );
    family(
        out,
        "bitsage_gpu_collector_last_sample_age_seconds",
        "gauge",
        "Age of the latest successful GPU sample, seconds.",
        collectors().map(|(l, c)| (l, c.last_sample_age_seconds.map(Value::from))),
    );
    family(
        out,
        "bitsage_gpu_collector_samples_total",
        "counter",
        "Successful GPU samples.",
        collectors().map(|(l, c)| (l, Some(Value::from(c.samples_total)))),
    );
    family(
        out,
        "bitsage_gpu_collector_sample_errors_total",
        "counter",
        "Failed GPU sampling attempts (source unavailable, timeout, ...).",
        collectors().map(|(l, c)| (l, Some(Value::from(c.sample_errors_total)))),
    );
}

/// Writes one family: HELP and TYPE, then its series; nothing at all when no series has a
/// value (absent metrics produce no series).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    series: impl Iterator<Item = (String, Option<Value>)>,
) {
    let mut header = false;
    for (labels, value) in series {
        let Some(value) = value else { continue };
        if !header {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            header = true;
        }
        out.push_str(name);
        out.push_str(&labels);
        out.push(' ');
        write_value(out, value);
        out.push('\n');
    }
}

fn gpu_labels(node: &str, uuid: &str, extra: Option<(&str, &str)>) -> String {
    match extra {
        Some((k, v)) => label_set(&[("node", Some(node)), ("uuid", Some(uuid)), (k, Some(v))]),
        None => label_set(&[("node", Some(node)), ("uuid", Some(uuid))]),
    }
}

/// `{k="v",...}` with the values escaped; labels without a value are left out.
fn label_set(labels: &[(&str, Option<&str>)]) -> String {
    let mut s = String::from("{");
    let mut first = true;
    for (k, v) in labels {
        let Some(v) = v else { continue };
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str(k);
        s.push_str("=\"");
        escape_label_value(&mut s, v);
        s.push('"');
    }
    s.push('}');
    s
}

/// Escapes a label value: backslash, double quote and line feed (the exposition format's rule).
pub fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, v: Value) {
    // Writing to a String cannot fail.
    let _ = match v {
        Value::Int(i) => write!(out, "{i}"),
        Value::Float(f) if f.is_nan() => write!(out, "NaN"),
        Value::Float(f) if f.is_infinite() => {
            write!(out, "{}", if f > 0.0 { "+Inf" } else { "-Inf" })
        }
        Value::Float(f) => write!(out, "{f}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{GpuDevice, GpuTier, XidEvent};
    use crate::time::now;

    fn inventory() -> GpuInventory {
        GpuInventory {
            devices: vec![GpuDevice {
                index: 0,
                uuid: "GPU-aaaa".into(),
                name: "NVIDIA \"H100\" 80GB\\HBM3\nx".into(),
                pci_bus_id: Some("00000000:18:00.0".into()),
                memory_total_bytes: Some(85_520_809_984),
                mig_enabled: Some(false),
                confidential_compute: None,
                tier: Some(GpuTier::Frontier),
                state: DeviceState::Ok,
            }],
            driver_version: Some("580.65.06".into()),
            cuda_version: Some("13.0".into()),
        }
    }

    fn sample() -> GpuSample {
        let mut s = GpuSample::empty("GPU-aaaa", now());
        s.gpu_utilization_ratio = Some(0.42);
        s.memory_used_bytes = Some(1 << 30);
        s.power_watts = Some(312.5);
        s.energy_joules_total = Some(1_234_567.25);
        s.sm_clock_hz = Some(1_980_000_000);
        s.ecc_corrected_total = Some(3);
        s.xid_events = Some(vec![XidEvent {
            code: 79,
            at: now(),
        }]);
        s.processes = Some(vec![]);
        s
    }

    #[test]
    fn renders_families_with_units_labels_and_no_absent_series() {
        let inv = inventory();
        let samples = [sample()];
        let text = render(&[NodeGpuMetrics {
            node: "node-1",
            inventory: Some(&inv),
            samples: &samples,
            collector: Some(GpuCollectorStatus {
                source: "nvml".into(),
                up: true,
                last_error: None,
                last_sample_age_seconds: Some(0.5),
                samples_total: 10,
                sample_errors_total: 2,
            }),
        }]);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(
                "bitsage_gpu_info{node=\"node-1\",uuid=\"GPU-aaaa\",index=\"0\",\
             name=\"NVIDIA \\\"H100\\\" 80GB\\\\HBM3\\nx\",pci_bus_id=\"00000000:18:00.0\",\
             driver_version=\"580.65.06\",cuda_version=\"13.0\",tier=\"frontier\"} 1"
            ),
            "{text}"
        );
        assert!(has("# TYPE bitsage_gpu_energy_joules_total counter"));
        assert!(has(
            "bitsage_gpu_utilization_ratio{node=\"node-1\",uuid=\"GPU-aaaa\"} 0.42"
        ));
        assert!(has(
            "bitsage_gpu_power_watts{node=\"node-1\",uuid=\"GPU-aaaa\"} 312.5"
        ));
        assert!(has(
            "bitsage_gpu_energy_joules_total{node=\"node-1\",uuid=\"GPU-aaaa\"} 1234567.25"
        ));
        assert!(has(
            "bitsage_gpu_sm_clock_hertz{node=\"node-1\",uuid=\"GPU-aaaa\"} 1980000000"
        ));
        assert!(has(
            "bitsage_gpu_memory_total_bytes{node=\"node-1\",uuid=\"GPU-aaaa\"} 85520809984"
        ));
        assert!(has(
            "bitsage_gpu_mig_enabled{node=\"node-1\",uuid=\"GPU-aaaa\"} 0"
        ));
        assert!(has(
            "bitsage_gpu_ecc_errors_total{node=\"node-1\",uuid=\"GPU-aaaa\",type=\"corrected\"} 3"
        ));
        assert!(has(
            "bitsage_gpu_state{node=\"node-1\",uuid=\"GPU-aaaa\",state=\"ok\"} 1"
        ));
        assert!(has(
            "bitsage_gpu_state{node=\"node-1\",uuid=\"GPU-aaaa\",state=\"lost\"} 0"
        ));
        assert!(has(
            "bitsage_gpu_xid_events{node=\"node-1\",uuid=\"GPU-aaaa\"} 1"
        ));
        assert!(has(
            "bitsage_gpu_last_xid_code{node=\"node-1\",uuid=\"GPU-aaaa\"} 79"
        ));
        assert!(has(
            "bitsage_gpu_compute_processes{node=\"node-1\",uuid=\"GPU-aaaa\"} 0"
        ));
        assert!(has("bitsage_gpu_collector_up{node=\"node-1\"} 1"));
        assert!(has(
            "bitsage_gpu_collector_last_sample_age_seconds{node=\"node-1\"} 0.5"
        ));
        assert!(has(
            "bitsage_gpu_collector_sample_errors_total{node=\"node-1\"} 2"
        ));
        // Absent metrics produce no series, and no family header either.
        for absent in [
            "bitsage_gpu_temperature_celsius",
            "bitsage_gpu_memory_free_bytes",
            "bitsage_gpu_pcie_tx_bytes_per_second",
            "bitsage_gpu_pcie_replays_total",
            "bitsage_gpu_confidential_compute_enabled",
            "uncorrected",
        ] {
            assert!(!text.contains(absent), "{absent} rendered:\n{text}");
        }
        // Each family is declared once.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps);
    }

    #[test]
    fn families_are_declared_once_across_nodes() {
        let inv = inventory();
        let samples = [sample()];
        let nodes = [
            NodeGpuMetrics {
                node: "a",
                inventory: Some(&inv),
                samples: &samples,
                collector: None,
            },
            NodeGpuMetrics {
                node: "b",
                inventory: Some(&inv),
                samples: &samples,
                collector: None,
            },
        ];
        let text = render(&nodes);
        assert_eq!(
            text.matches("# TYPE bitsage_gpu_power_watts gauge").count(),
            1
        );
        assert_eq!(text.matches("bitsage_gpu_power_watts{").count(), 2);
        assert!(!text.contains("collector"));
    }

    #[test]
    fn special_floats_use_prometheus_spelling() {
        let mut s = String::new();
        write_value(&mut s, Value::Float(f64::NAN));
        s.push(' ');
        write_value(&mut s, Value::Float(f64::INFINITY));
        s.push(' ');
        write_value(&mut s, Value::Int(u64::MAX));
        assert_eq!(s, "NaN +Inf 18446744073709551615");
    }
}
