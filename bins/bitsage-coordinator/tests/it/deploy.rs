//! The deployment files in `deploy/` against the real thing:
//!
//! - a coordinator served in process, given a little real traffic (a CPU-only node and a GPU
//!   node — the shipped synthetic two-H100 fixture — register and heartbeat, one passes its
//!   probe, one hands in a tampered proof, a client runs into the login limit): its `/metrics`
//!   passes `promtool check metrics`, and every metric the Grafana dashboard and the alerting
//!   rules use is a family it exports (a few absent by design are listed with the reason);
//!   the CPU-only node exports `bitsage_gpu_collector_cpu_only` and no `_up`, so
//!   `GpuCollectorDown` cannot fire for it;
//! - the dashboard's shape (what Grafana needs to import it, no overlapping panels);
//! - both systemd units pass `systemd-analyze verify` with the binaries cargo built, use only
//!   flags and environment variables the binaries know, and the agent's unit holds every line
//!   `bitsage-agent service --systemd` writes for the default paths.
//!
//! promtool (Debian's prometheus package, `scripts/lib/promtool.sh`) and systemd-analyze are
//! skipped with a printed reason when missing, and required under `CI=true`.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bitsage_coordinator::{serve, CoordinatorConfig};
use bitsage_core::crypto::{Hash32, SignatureBytes};
use bitsage_core::gpu::{GpuCollectorStatus, HOST_ONLY_SOURCE};
use bitsage_core::node::HardwareReport;
use bitsage_core::{NodeId, WalletAddress};
use bitsage_http::api::{
    Assignment, CompleteRequest, HeartbeatRequest, LeaseRequest, RegisterRequest,
};
use bitsage_http::client::CoordinatorClient;
use bitsage_prover::StwoProver;
use ed25519_dalek::SigningKey;

/// Families the dashboard or the alerts use that this test's coordinator does not export, by
/// design, with the reason. Everything else must be in its `/metrics`.
const ABSENT_BY_DESIGN: &[(&str, &str)] = &[
    (
        "bitsage_indexer_block_height",
        "no chain configured: there is no event indexer",
    ),
    (
        "bitsage_indexer_lag_blocks",
        "no chain configured: there is no event indexer",
    ),
    (
        "bitsage_chain_rpc_duration_seconds",
        "no chain configured: no RPC call is made",
    ),
    (
        "bitsage_total_staked",
        "no chain configured: stake is read from the staking contract",
    ),
];

/// The repository's root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `name` on the `PATH` (or `env` when set), or `None` outside CI with the reason printed.
fn tool(name: &str, env: Option<&str>, why: &str) -> Option<PathBuf> {
    let from_env = env
        .and_then(std::env::var_os)
        .map(PathBuf::from)
        .filter(|p| p.exists());
    let found = from_env.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required under CI=true ({why})"
        );
        eprintln!("SKIPPED the {name} check: {name} not found ({why})");
    }
    found
}

fn promtool() -> Option<PathBuf> {
    tool(
        "promtool",
        Some("PROMTOOL"),
        "Debian's prometheus package; scripts/test.sh installs it",
    )
}

fn systemd_analyze() -> Option<PathBuf> {
    tool("systemd-analyze", None, "Debian's systemd package")
}

// ---------------------------------------------------------------- metric names

/// Every `bitsage_…` identifier in `text`, histogram series suffixes (`_bucket`, `_sum`,
/// `_count`) stripped to the family name.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("bitsage_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        // Part of a longer identifier (e.g. `my_bitsage_x`): not one of ours.
        if start == 0 || !ident(bytes[start - 1]) {
            let mut name = &text[start..end];
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    name = base;
                    break;
                }
            }
            names.insert(name.to_string());
        }
        i = end.max(start + 1);
    }
    names
}

/// The families a text exposition declares (`# TYPE` and `# HELP` lines), with their type.
fn exported_families(body: &str) -> BTreeMap<String, String> {
    let mut families = BTreeMap::new();
    for line in body.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("TYPE"), Some(name)) => {
                families.insert(name.to_string(), words.next().unwrap_or("").to_string());
            }
            (Some("#"), Some("HELP"), Some(name)) => {
                families.entry(name.to_string()).or_default();
            }
            _ => {}
        }
    }
    families
}

/// The alerting rules' `expr:` values (inline or block scalars), by alert name.
fn alert_exprs(rules: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut alert = String::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        } else if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            let expr = if value.starts_with('|') || value.starts_with('>') {
                let indent = line.len() - trimmed.len();
                let mut block = Vec::new();
                while let Some(next) = lines.peek() {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    lines.next();
                }
                block.join(" ")
            } else {
                value.to_string()
            };
            out.push((alert.clone(), expr.trim().to_string()));
        }
    }
    out
}

/// Each panel's expressions (panel title, expr).
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((title.clone(), t["expr"].as_str().unwrap_or("").to_string()));
        }
    }
    out
}

fn load_dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/bitsage-dashboard.json"))
        .expect("deploy/grafana/bitsage-dashboard.json is JSON")
}

// ---------------------------------------------------------------- live traffic

fn cpu_hardware() -> HardwareReport {
    HardwareReport {
        gpu_unavailable_reason: Some("deploy test node without GPU".into()),
        ..HardwareReport::default()
    }
}

/// The shipped synthetic two-H100 report (`bitsage-gpu/fixtures`; hand-made, labelled so).
fn fixture_report() -> bitsage_gpu::GpuReport {
    serde_json::from_str(&read("bitsage-gpu/fixtures/synthetic-2xh100.json")).expect("fixture")
}

async fn register(client: &CoordinatorClient, key: &SigningKey, id: &NodeId, hw: HardwareReport) {
    let req = RegisterRequest::signed(
        key,
        id.clone(),
        WalletAddress::parse(support::WALLET).expect("wallet"),
        hw,
        "deploy-test/1",
        bitsage_core::time::now(),
    );
    client.register(&req).await.expect("register");
}

async fn heartbeat(
    client: &CoordinatorClient,
    key: &SigningKey,
    id: &NodeId,
    seq: u64,
    samples: Vec<bitsage_core::gpu::GpuSample>,
    collector: GpuCollectorStatus,
) {
    let hb = HeartbeatRequest::unsigned(
        id.clone(),
        seq,
        bitsage_core::time::now(),
        Some(0.5),
        "deploy-test/1",
        samples,
    )
    .with_gpu_collector(collector)
    .sign(key);
    client.heartbeat(&hb).await.expect("heartbeat");
}

/// Leases the node's probe, proves it (tampered when `tamper`), hands it in; the answer.
async fn probe(
    client: &CoordinatorClient,
    key: &SigningKey,
    id: &NodeId,
    seq: u64,
    tamper: bool,
) -> Result<(), bitsage_http::client::ClientError> {
    let lease = client
        .lease(&LeaseRequest::signed(
            key,
            id.clone(),
            seq,
            bitsage_core::time::now(),
        ))
        .await
        .expect("lease");
    let Some(Assignment::Probe { ticket }) = lease.assignment else {
        panic!("a new node gets a probe, got {:?}", lease.assignment)
    };
    let spec = ticket.spec.clone();
    let mut envelope = tokio::task::spawn_blocking(move || StwoProver::new().prove_sync(&spec))
        .await
        .expect("join")
        .expect("prove");
    if tamper {
        let at = envelope.proof.len() / 3;
        envelope.proof[at] ^= 0x40;
    }
    let req = CompleteRequest {
        node_id: id.clone(),
        job_id: ticket.spec.id,
        lease_id: None,
        probe: Some(ticket),
        envelope,
        receipt: None,
        receipt_signature: None,
        envelope_digest: Hash32([0; 32]),
        sent_at: bitsage_core::time::now(),
        signature: SignatureBytes([0; 64]),
    }
    .sign(key);
    client.complete(&req).await.map(|_| ())
}

/// The coordinator's `/metrics` after a little real traffic.
async fn live_metrics() -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        CoordinatorConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), dir.path());
    config.policy.probe_chain_length = 64;
    config.bootstrap_admin = Some((support::ADMIN.0.into(), support::ADMIN.1.into()));
    let running = serve(config).await.expect("coordinator");
    let url = running.url();
    let token = support::admin_token(&url).await;
    let client = CoordinatorClient::new(&url)
        .expect("client")
        .with_bearer_token(token.clone());

    // A CPU-only node: its collector samples the host-only source (reported down, even:
    // it must still export no `bitsage_gpu_collector_up`).
    let cpu_key = SigningKey::from_bytes(&[21; 32]);
    let cpu = NodeId::parse("deploy-cpu").expect("id");
    register(&client, &cpu_key, &cpu, cpu_hardware()).await;
    let host_only = GpuCollectorStatus {
        source: HOST_ONLY_SOURCE.into(),
        up: false,
        last_error: Some("no GPU on this host".into()),
        samples_total: 0,
        sample_errors_total: 3,
        last_sample_age_seconds: None,
    };
    heartbeat(&client, &cpu_key, &cpu, 1, Vec::new(), host_only).await;
    // It cheats on its probe: a rejected proof, a fraud, a quarantine.
    let err = probe(&client, &cpu_key, &cpu, 2, true)
        .await
        .expect_err("a tampered proof is refused");
    assert_eq!(err.kind(), Some("proof_rejected"), "{err}");

    // A GPU node (the synthetic fixture's inventory and readings, stamped now) whose
    // collector is up; it passes its probe.
    let report = fixture_report();
    let gpu_key = SigningKey::from_bytes(&[22; 32]);
    let gpu = NodeId::parse("deploy-gpu").expect("id");
    let hardware = HardwareReport {
        gpus: report.gpus.clone(),
        driver_version: report.driver_version.clone(),
        cuda_version: report.cuda_version.clone(),
        ..HardwareReport::default()
    };
    register(&client, &gpu_key, &gpu, hardware).await;
    let now = bitsage_core::time::now();
    let samples = report
        .samples
        .iter()
        .cloned()
        .map(|mut s| {
            s.at = now;
            s
        })
        .collect();
    let collector = GpuCollectorStatus {
        source: "fixture".into(),
        up: true,
        last_error: None,
        samples_total: 1,
        sample_errors_total: 0,
        last_sample_age_seconds: Some(0.0),
    };
    heartbeat(&client, &gpu_key, &gpu, 1, samples, collector).await;
    probe(&client, &gpu_key, &gpu, 2, false)
        .await
        .expect("an honest probe passes");

    // A client past the login limit (10 a minute per address): 429s.
    let http = reqwest::Client::new();
    let mut limited = false;
    for _ in 0..15 {
        let r = http
            .post(format!("{url}/api/auth/login"))
            .json(&serde_json::json!({ "username": "nobody", "password": "wrong password 1" }))
            .send()
            .await
            .expect("login");
        limited |= r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "the login limit answered 429");

    // A live subscriber while the metrics are read.
    let sse = http
        .get(format!("{url}/api/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events");
    let body = support::wait_for("the /metrics body", Duration::from_secs(30), || {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let r = http
                .get(format!("{url}/metrics"))
                .bearer_auth(token)
                .send()
                .await
                .ok()?;
            assert!(r.status().is_success(), "/metrics: {}", r.status());
            let ct = r
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            assert!(ct.starts_with("text/plain"), "content type {ct}");
            r.text().await.ok()
        }
    })
    .await;
    drop(sse);
    running.shutdown().await.expect("shutdown");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool_and_cover_the_dashboard_and_alerts() {
    let body = live_metrics().await;

    // (a) The exposition passes promtool's parser and linter.
    if let Some(promtool) = promtool() {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool check metrics");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write metrics to promtool");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}\n--- body ---\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The CPU-only node: cpu_only 1 and no collector `up` (GpuCollectorDown's premise).
    assert!(
        body.lines()
            .any(|l| l.starts_with("bitsage_gpu_collector_cpu_only{")
                && l.contains("node=\"deploy-cpu\"")
                && l.ends_with(" 1")),
        "the CPU-only node exports bitsage_gpu_collector_cpu_only 1:\n{body}"
    );
    assert!(
        !body.lines().any(
            |l| l.starts_with("bitsage_gpu_collector_up{") && l.contains("node=\"deploy-cpu\"")
        ),
        "a CPU-only node exports no bitsage_gpu_collector_up:\n{body}"
    );

    // (b) Every metric the dashboard and the alerts use is exported.
    let families = exported_families(&body);
    let dashboard = load_dashboard();
    let rules = read("deploy/prometheus/bitsage-alerts.yml");
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (panel, expr) in dashboard_exprs(&dashboard) {
        for name in metric_names(&expr) {
            used.entry(name)
                .or_default()
                .insert(format!("panel {panel:?}"));
        }
    }
    let exprs = alert_exprs(&rules);
    assert!(exprs.len() >= 10, "alert expressions found: {exprs:?}");
    for (alert, expr) in &exprs {
        for name in metric_names(expr) {
            used.entry(name)
                .or_default()
                .insert(format!("alert {alert}"));
        }
    }
    let allowed: BTreeMap<&str, &str> = ABSENT_BY_DESIGN.iter().copied().collect();
    let mut missing = Vec::new();
    for (name, users) in &used {
        if families.contains_key(name) {
            continue;
        }
        if let Some(reason) = allowed.get(name.as_str()) {
            eprintln!("not exported here, by design ({reason}): {name}");
            continue;
        }
        missing.push(format!(
            "{name} (used by {})",
            users.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    assert!(
        missing.is_empty(),
        "metrics the dashboard or alerts use that /metrics does not export:\n  {}\nexported families: {:?}",
        missing.join("\n  "),
        families.keys().collect::<Vec<_>>()
    );
    // The allowlist stays honest: nothing on it is exported after all.
    for (name, _) in ABSENT_BY_DESIGN {
        assert!(
            !families.contains_key(*name),
            "{name} is exported: take it off ABSENT_BY_DESIGN"
        );
        assert!(
            used.contains_key(*name),
            "{name} is not used: take it off ABSENT_BY_DESIGN"
        );
    }
    // Histograms are used as histograms.
    for (panel, expr) in dashboard_exprs(&dashboard) {
        if expr.contains("histogram_quantile") {
            for name in metric_names(&expr) {
                if let Some(kind) = families.get(&name) {
                    assert_eq!(kind, "histogram", "{name} in panel {panel:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------- the dashboard's shape

#[test]
fn the_dashboard_is_a_grafana_dashboard_without_overlapping_panels() {
    let d = load_dashboard();
    assert_eq!(d["title"], "BitSage coordinator");
    assert_eq!(d["uid"], "bitsage-coordinator");
    assert_eq!(d["schemaVersion"], 39);
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a `datasource` template variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");

    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 20, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(!title.is_empty());
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: id"));
        assert!(ids.insert(id), "{title}: id {id} used twice");
        assert!(
            p["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{title}: type"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: datasource"
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no target");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{title}: a target without expr"
            );
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{title}: target datasource"
            );
            assert!(refs.insert(t["refId"].to_string()), "{title}: refId twice");
        }
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                    panic!("panels {other:?} and {title:?} overlap at ({cx}, {cy})");
                }
            }
        }
    }
    // The deployment guide's queries, each on a panel.
    let exprs: Vec<String> = dashboard_exprs(&d).into_iter().map(|(_, e)| e).collect();
    for wanted in [
        "bitsage_active_workers",
        "bitsage_nodes",
        "histogram_quantile(0.99, sum by (le) (rate(bitsage_dashboard_request_duration_seconds_bucket[5m])))",
        "avg(bitsage_node_uptime_ratio)",
        "rate(bitsage_proofs_verified_total[5m])) * 60",
        "bitsage_jobs{status=\"completed\"}",
        "bitsage_indexer_lag_blocks",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(wanted)),
            "no panel queries {wanted}"
        );
    }
}

#[test]
fn metric_names_are_read_from_expressions() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(bitsage_x_seconds_bucket[5m]))) / my_bitsage_y + bitsage_jobs{status=\"a\"} + up{job=\"bitsage-coordinator\"}",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["bitsage_jobs", "bitsage_x_seconds"]
    );
    let exprs = alert_exprs(
        "  - alert: A\n    expr: bitsage_a > 1\n  - alert: B\n    expr: |\n      bitsage_b\n        > 2\n    for: 1m\n",
    );
    assert_eq!(
        exprs,
        [
            ("A".to_string(), "bitsage_a > 1".to_string()),
            ("B".to_string(), "bitsage_b > 2".to_string())
        ]
    );
}

#[test]
fn every_alert_has_a_severity_and_its_annotations() {
    let rules = read("deploy/prometheus/bitsage-alerts.yml");
    let blocks: Vec<&str> = rules.split("- alert:").skip(1).collect();
    assert!(blocks.len() >= 10, "{} alerts", blocks.len());
    for block in blocks {
        let name = block.lines().next().unwrap_or("").trim();
        for key in ["expr:", "severity:", "summary:", "description:", "runbook:"] {
            assert!(block.contains(key), "alert {name} has no {key}");
        }
        // Only FraudDetected pages at once.
        assert_eq!(
            block.contains("for:"),
            name != "FraudDetected",
            "alert {name}: for"
        );
    }
}

// ---------------------------------------------------------------- systemd units

/// `--help` of `binary args…`: clap refuses an unknown flag before printing help, so success
/// means every flag in `args` is real. Returns the help text.
fn help_accepting(binary: &Path, args: &[&str]) -> String {
    let out = Command::new(binary)
        .args(args)
        .arg("--help")
        .env_remove("BITSAGE_DATABASE_URL")
        .output()
        .expect("run --help");
    assert!(
        out.status.success(),
        "{} {} --help: {}",
        binary.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A unit's `ExecStart=` words after the executable.
fn exec_args(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Every `BITSAGE_…` name in `text`.
fn env_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("BITSAGE_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// `systemd-analyze verify` of `text` as `dir/name`; fails on any complaint about the unit.
fn assert_verifies(analyze: &Path, dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify {name}:\n{err}"
    );
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(name) || l.contains("ignoring") || l.contains("Unknown"))
        .collect();
    assert!(complaints.is_empty(), "{name}: {complaints:#?}");
}

#[test]
fn the_systemd_units_verify_and_use_real_flags() {
    let coordinator_bin = PathBuf::from(env!("CARGO_BIN_EXE_bitsage-coordinator"));
    let agent_bin = support::agent_bin();
    let coordinator = read("deploy/systemd/bitsage-coordinator.service");
    let agent = read("deploy/systemd/bitsage-agent.service");

    // Flags: the binaries accept ExecStart's arguments.
    let coordinator_args = exec_args(&coordinator);
    let args: Vec<&str> = coordinator_args.iter().map(String::as_str).collect();
    let coordinator_help = help_accepting(&coordinator_bin, &args);
    let agent_args = exec_args(&agent);
    let args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
    assert_eq!(args.first(), Some(&"run"), "{agent_args:?}");
    let agent_help = help_accepting(&agent_bin, &args);

    // Environment: every BITSAGE_* variable the units set or mention is one the binary reads
    // (clap lists them as `[env: NAME=]`), but the two it reads itself, never as flags.
    let read_directly = ["BITSAGE_DEPLOYMENT_KEY", "BITSAGE_ADMIN_PASSWORD"];
    for name in env_names(&coordinator) {
        assert!(
            read_directly.contains(&name.as_str())
                || coordinator_help.contains(&format!("[env: {name}=")),
            "bitsage-coordinator does not read {name}"
        );
    }
    for name in env_names(&agent) {
        assert!(
            agent_help.contains(&format!("[env: {name}=")),
            "bitsage-agent run does not read {name}"
        );
    }
    let main_rs = read("bins/bitsage-coordinator/src/main.rs");
    for name in read_directly {
        assert!(
            main_rs.contains(&format!("\"{name}\"")),
            "the coordinator reads {name}"
        );
    }

    // The agent's unit is the generator's output for the default paths, plus hardening.
    let generated = bitsage_http::onboarding::ServiceSpec {
        binary: "/usr/local/bin/bitsage-agent".into(),
        config: "/etc/bitsage/agent.yaml".into(),
        data_dir: "/var/lib/bitsage-agent".into(),
        user: Some("bitsage".into()),
        shutdown_grace_secs: bitsage_agent::config_file::DEFAULT_SHUTDOWN_GRACE_SECS,
    }
    .systemd_unit()
    .expect("unit");
    let sections = |text: &str| -> BTreeSet<(String, String)> {
        let mut section = String::new();
        let mut out = BTreeSet::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                section = line.to_string();
            } else {
                out.insert((section.clone(), line.to_string()));
            }
        }
        out
    };
    let ours = sections(&agent);
    for line in sections(&generated) {
        assert!(
            ours.contains(&line),
            "deploy/systemd/bitsage-agent.service lacks {line:?} that `bitsage-agent service --systemd` writes"
        );
    }
    assert!(
        !agent.lines().any(|l| l.starts_with("PrivateDevices=")
            || l.starts_with("DevicePolicy=")
            || l.starts_with("ProtectClock=")),
        "the agent keeps access to the GPU devices"
    );

    // systemd-analyze verify, with the binaries cargo built in ExecStart.
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text, bin) in [
        (
            "bitsage-coordinator.service",
            &coordinator,
            &coordinator_bin,
        ),
        ("bitsage-agent.service", &agent, &agent_bin),
    ] {
        let default = format!("/usr/local/bin/{}", name.trim_end_matches(".service"));
        assert!(
            text.contains(&format!("ExecStart={default} ")),
            "{name}: ExecStart"
        );
        let text = text.replace(&default, &bin.display().to_string());
        assert_verifies(&analyze, dir.path(), name, &text);
    }
}
