//! Prometheus metric families of GPU readings: a pure function over the domain's GPU types
//! ([`families`], structured, for an exposition library to encode — the coordinator's
//! `/metrics` does so with `prometheus-client`) and its Prometheus text rendering (format
//! 0.0.4, [`render`]; the agent's GPU collector, through `bitsage_gpu::prometheus`, which adds
//! the collector-snapshot conversion).
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
//! | `bitsage_gpu_collector_cpu_only{node}` | gauge (1) | a node without GPUs (see below) |
//! | `bitsage_gpu_collector_up{node}` | gauge (0/1) | collector |
//! | `bitsage_gpu_collector_last_sample_age_seconds{node}` | gauge | collector |
//! | `bitsage_gpu_collector_samples_total{node}`, `bitsage_gpu_collector_sample_errors_total{node}` | counter | collector |
//!
//! A **CPU-only node** ([`NodeGpuMetrics::is_cpu_only`]: its inventory lists no GPU, or, with
//! no inventory, its collector samples the host-only source) exports
//! `bitsage_gpu_collector_cpu_only{node} 1` and none of the other collector series: it has no
//! GPU to collect from, so an alert on `bitsage_gpu_collector_up == 0` does not fire for it.

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

impl NodeGpuMetrics<'_> {
    /// Whether the node has no GPU to collect from: its inventory (when known) lists no
    /// device, or — inventory unknown — its collector samples the host-only source. A known
    /// inventory decides: a registered GPU node whose agent lost its GPU source is not
    /// CPU-only, and its `up 0` is exported.
    pub fn is_cpu_only(&self) -> bool {
        match self.inventory {
            Some(inv) => inv.devices.is_empty(),
            None => self.collector.as_ref().is_some_and(|c| c.is_cpu_only()),
        }
    }
}

/// A sample value: integers stay exact (u64 counters above 2^53 survive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue {
    /// An integer.
    Int(u64),
    /// A float (NaN and infinities allowed).
    Float(f64),
}

impl From<u64> for SampleValue {
    fn from(v: u64) -> Self {
        SampleValue::Int(v)
    }
}

impl From<f64> for SampleValue {
    fn from(v: f64) -> Self {
        SampleValue::Float(v)
    }
}

impl From<bool> for SampleValue {
    fn from(v: bool) -> Self {
        SampleValue::Int(u64::from(v))
    }
}

/// The type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (its name ends in `_total`).
    Counter,
}

impl FamilyKind {
    /// `gauge` or `counter`, as the text format's `# TYPE` line says.
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyKind::Gauge => "gauge",
            FamilyKind::Counter => "counter",
        }
    }
}

/// One series of a family: its labels (in order) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Label names and values (values unescaped).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: SampleValue,
}

/// One metric family with at least one series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// The series name as the text format 0.0.4 writes it (a counter's ends in `_total`).
    pub name: &'static str,
    /// Its type.
    pub kind: FamilyKind,
    /// Its help text (one line, ending in a full stop).
    pub help: &'static str,
    /// Its series, in a fixed order (of `nodes`, then of their devices or samples).
    pub series: Vec<Series>,
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
    for f in families(nodes) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for s in &f.series {
            out.push_str(f.name);
            out.push('{');
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape_label_value(out, v);
                out.push('"');
            }
            out.push_str("} ");
            write_value(out, s.value);
            out.push('\n');
        }
    }
}

/// Collects one family; left out when no series has a value (absent metrics produce no
/// series, and no family header either).
fn family(
    out: &mut Vec<MetricFamily>,
    name: &'static str,
    kind: FamilyKind,
    help: &'static str,
    series: impl Iterator<Item = (Vec<(&'static str, String)>, Option<SampleValue>)>,
) {
    let series: Vec<Series> = series
        .filter_map(|(labels, value)| value.map(|value| Series { labels, value }))
        .collect();
    if !series.is_empty() {
        out.push(MetricFamily {
            name,
            kind,
            help,
            series,
        });
    }
}

/// The GPU families of `nodes` (see the [module documentation](self)): in a fixed order, each
/// with at least one series.
pub fn families(nodes: &[NodeGpuMetrics<'_>]) -> Vec<MetricFamily> {
    use FamilyKind::{Counter, Gauge};
    let mut out = Vec::new();
    // ---- identity and static properties (inventory)
    let devices = || {
        nodes.iter().flat_map(|n| {
            n.inventory
                .into_iter()
                .flat_map(move |inv| inv.devices.iter().map(move |d| (n.node, inv, d)))
        })
    };
    family(
        &mut out,
        "bitsage_gpu_info",
        Gauge,
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
            (label_set(&labels), Some(SampleValue::Int(1)))
        }),
    );
    type DeviceGet = fn(&crate::gpu::GpuDevice) -> Option<SampleValue>;
    let inventory_gauges: [(&'static str, &'static str, DeviceGet); 3] = [
        (
            "bitsage_gpu_memory_total_bytes",
            "Total framebuffer memory, bytes.",
            |d| d.memory_total_bytes.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_mig_enabled",
            "Whether MIG mode is enabled (1) or not (0).",
            |d| d.mig_enabled.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_confidential_compute_enabled",
            "Whether confidential-compute mode is on (1) or off (0).",
            |d| d.confidential_compute.map(SampleValue::from),
        ),
    ];
    for (name, help, get) in inventory_gauges {
        family(
            &mut out,
            name,
            Gauge,
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
        &mut out,
        "bitsage_gpu_state",
        Gauge,
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
                    Some(SampleValue::from(s.state == state)),
                )
            })
        }),
    );
    type Get = fn(&GpuSample) -> Option<SampleValue>;
    let per_sample: [(&'static str, FamilyKind, &'static str, Get); 14] = [
        (
            "bitsage_gpu_utilization_ratio",
            Gauge,
            "Share of time a kernel was running, 0-1.",
            |s| s.gpu_utilization_ratio.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_memory_utilization_ratio",
            Gauge,
            "Share of time device memory was read or written, 0-1.",
            |s| s.memory_utilization_ratio.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_memory_used_bytes",
            Gauge,
            "Framebuffer memory used, bytes.",
            |s| s.memory_used_bytes.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_memory_free_bytes",
            Gauge,
            "Framebuffer memory free, bytes.",
            |s| s.memory_free_bytes.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_temperature_celsius",
            Gauge,
            "GPU core temperature, degrees Celsius.",
            |s| s.temperature_celsius.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_power_watts",
            Gauge,
            "Power draw, watts.",
            |s| s.power_watts.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_energy_joules_total",
            Counter,
            "Energy consumed since the driver loaded, joules.",
            |s| s.energy_joules_total.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_sm_clock_hertz",
            Gauge,
            "SM clock, hertz.",
            |s| s.sm_clock_hz.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_memory_clock_hertz",
            Gauge,
            "Memory clock, hertz.",
            |s| s.memory_clock_hz.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_pcie_tx_bytes_per_second",
            Gauge,
            "PCIe transmit throughput, bytes per second.",
            |s| s.pcie_tx_bytes_per_second.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_pcie_rx_bytes_per_second",
            Gauge,
            "PCIe receive throughput, bytes per second.",
            |s| s.pcie_rx_bytes_per_second.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_pcie_replays_total",
            Counter,
            "PCIe replays.",
            |s| s.pcie_replays_total.map(SampleValue::from),
        ),
        (
            "bitsage_gpu_xid_events",
            Gauge,
            "XID errors seen since the previous sample.",
            |s| {
                s.xid_events
                    .as_ref()
                    .map(|e| SampleValue::Int(e.len() as u64))
            },
        ),
        (
            "bitsage_gpu_last_xid_code",
            Gauge,
            "Code of the latest XID error seen since the previous sample.",
            |s| {
                s.xid_events
                    .as_ref()?
                    .last()
                    .map(|e| SampleValue::Int(e.code))
            },
        ),
    ];
    for (name, kind, help, get) in per_sample {
        family(
            &mut out,
            name,
            kind,
            help,
            samples().map(|(node, s)| (gpu_labels(node, &s.uuid, None), get(s))),
        );
    }
    family(
        &mut out,
        "bitsage_gpu_ecc_errors_total",
        Counter,
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
                    v.map(SampleValue::from),
                )
            })
        }),
    );
    family(
        &mut out,
        "bitsage_gpu_compute_processes",
        Gauge,
        "Compute processes running on the GPU.",
        samples().map(|(node, s)| {
            (
                gpu_labels(node, &s.uuid, None),
                s.processes
                    .as_ref()
                    .map(|p| SampleValue::Int(p.len() as u64)),
            )
        }),
    );

    // ---- the collector (a CPU-only node has nothing to collect: one `cpu_only` series)
    family(
        &mut out,
        "bitsage_gpu_collector_cpu_only",
        Gauge,
        "A node without GPUs (value 1): it has no other bitsage_gpu_collector_* series.",
        nodes
            .iter()
            .filter(|n| n.is_cpu_only())
            .map(|n| (node_labels(n.node), Some(SampleValue::Int(1)))),
    );
    let collectors = || {
        nodes
            .iter()
            .filter(|n| !n.is_cpu_only())
            .filter_map(|n| n.collector.as_ref().map(|c| (node_labels(n.node), c)))
    };
    family(
        &mut out,
        "bitsage_gpu_collector_up",
        Gauge,
        "Whether the latest GPU sampling attempt succeeded.",
        collectors().map(|(l, c)| (l, Some(SampleValue::from(c.up)))),
    );
    family(
        &mut out,
        "bitsage_gpu_collector_last_sample_age_seconds",
        Gauge,
        "Age of the latest successful GPU sample, seconds.",
        collectors().map(|(l, c)| (l, c.last_sample_age_seconds.map(SampleValue::from))),
    );
    family(
        &mut out,
        "bitsage_gpu_collector_samples_total",
        Counter,
        "Successful GPU samples.",
        collectors().map(|(l, c)| (l, Some(SampleValue::from(c.samples_total)))),
    );
    family(
        &mut out,
        "bitsage_gpu_collector_sample_errors_total",
        Counter,
        "Failed GPU sampling attempts (source unavailable, timeout, ...).",
        collectors().map(|(l, c)| (l, Some(SampleValue::from(c.sample_errors_total)))),
    );
    out
}

fn node_labels(node: &str) -> Vec<(&'static str, String)> {
    vec![("node", node.to_string())]
}

fn gpu_labels(
    node: &str,
    uuid: &str,
    extra: Option<(&'static str, &str)>,
) -> Vec<(&'static str, String)> {
    let mut labels = vec![("node", node.to_string()), ("uuid", uuid.to_string())];
    if let Some((k, v)) = extra {
        labels.push((k, v.to_string()));
    }
    labels
}

/// The labels that have a value, in order.
fn label_set(labels: &[(&'static str, Option<&str>)]) -> Vec<(&'static str, String)> {
    labels
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v.to_string())))
        .collect()
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

fn write_value(out: &mut String, v: SampleValue) {
    // Writing to a String cannot fail.
    let _ = match v {
        SampleValue::Int(i) => write!(out, "{i}"),
        SampleValue::Float(f) if f.is_nan() => write!(out, "NaN"),
        SampleValue::Float(f) if f.is_infinite() => {
            write!(out, "{}", if f > 0.0 { "+Inf" } else { "-Inf" })
        }
        SampleValue::Float(f) => write!(out, "{f}"),
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
    fn a_cpu_only_node_exports_cpu_only_and_no_collector_health() {
        let host_only = GpuCollectorStatus {
            source: crate::gpu::HOST_ONLY_SOURCE.into(),
            up: false,
            last_error: None,
            last_sample_age_seconds: None,
            samples_total: 0,
            sample_errors_total: 0,
        };
        let no_gpus = GpuInventory {
            devices: vec![],
            driver_version: None,
            cuda_version: None,
        };
        let gpus = inventory();
        let text = render(&[
            // The agent's own view: no inventory, a host-only collector.
            NodeGpuMetrics {
                node: "agent-cpu",
                inventory: None,
                samples: &[],
                collector: Some(host_only.clone()),
            },
            // The coordinator's view: registered without GPUs.
            NodeGpuMetrics {
                node: "registered-cpu",
                inventory: Some(&no_gpus),
                samples: &[],
                collector: None,
            },
            // A registered GPU node whose agent lost its GPU source is not CPU-only.
            NodeGpuMetrics {
                node: "gpu-lost",
                inventory: Some(&gpus),
                samples: &[],
                collector: Some(host_only),
            },
        ]);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has("bitsage_gpu_collector_cpu_only{node=\"agent-cpu\"} 1"),
            "{text}"
        );
        assert!(has(
            "bitsage_gpu_collector_cpu_only{node=\"registered-cpu\"} 1"
        ));
        assert!(!text.contains("cpu_only{node=\"gpu-lost\"}"));
        assert!(has("bitsage_gpu_collector_up{node=\"gpu-lost\"} 0"));
        for node in ["agent-cpu", "registered-cpu"] {
            assert!(
                !text.contains(&format!("collector_up{{node=\"{node}\"}}"))
                    && !text.contains(&format!("errors_total{{node=\"{node}\"}}")),
                "{text}"
            );
        }
    }

    #[test]
    fn special_floats_use_prometheus_spelling() {
        let mut s = String::new();
        write_value(&mut s, SampleValue::Float(f64::NAN));
        s.push(' ');
        write_value(&mut s, SampleValue::Float(f64::INFINITY));
        s.push(' ');
        write_value(&mut s, SampleValue::Int(u64::MAX));
        assert_eq!(s, "NaN +Inf 18446744073709551615");
    }
}
