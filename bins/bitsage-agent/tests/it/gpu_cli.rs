//! `bitsage-agent gpu` as a user runs it. On a host without the NVIDIA driver (CI) it must
//! exit 0 with an empty GPU list and NVML's reason; on a GPU host it lists the GPUs.

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bitsage-agent"))
        .args(args)
        .output()
        .expect("run bitsage-agent")
}

#[test]
fn gpu_json_reports_this_host_honestly() {
    let out = agent(&["gpu", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let host = &doc["host"];
    assert!(host["logical_cores"].as_u64().unwrap_or(0) >= 1, "{doc}");
    assert!(
        host["memory_total_bytes"].as_u64().unwrap_or(0) > 0,
        "{doc}"
    );
    match doc["status"].as_str() {
        Some("unavailable") => {
            assert_eq!(doc["gpus"], serde_json::json!([]));
            assert_eq!(doc["samples"], serde_json::json!([]));
            let reason = doc["reason"].as_str().unwrap_or("");
            assert!(!reason.is_empty(), "{doc}");
            if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1").exists() {
                assert!(reason.contains("libnvidia-ml.so.1"), "{reason}");
            }
        }
        Some("ok") => {
            let gpus = doc["gpus"].as_array().expect("gpus");
            assert_eq!(doc["samples"].as_array().map(Vec::len), Some(gpus.len()));
        }
        other => panic!("unexpected status {other:?}: {doc}"),
    }
}

#[test]
fn gpu_table_says_why_there_is_no_gpu_data() {
    let out = agent(&["gpu"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("GPU source: nvml "), "{text}");
    assert!(text.contains("Host: "), "{text}");
}

#[test]
fn attestation_without_confidential_compute_is_not_available() {
    let nonce = "ab".repeat(32);
    let out = agent(&["gpu", "--json", "--attest-nonce", &nonce]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let a = &doc["attestation"];
    if doc["status"] == "unavailable" {
        assert_eq!(a["status"], "not_available", "{doc}");
        assert!(a["reason"]
            .as_str()
            .unwrap_or("")
            .contains("attestation not available"));
    } else {
        assert_eq!(a["status"], "devices", "{doc}");
    }
    // A malformed nonce is a usage error.
    assert!(!agent(&["gpu", "--attest-nonce", "xyz"]).status.success());
}
