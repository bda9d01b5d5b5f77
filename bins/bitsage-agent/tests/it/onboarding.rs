//! Onboarding as an operator does it: `init` writes `agent.yaml`, `run --config --check`
//! shows what the agent would run with (flags over the file), and `service` writes a unit
//! that systemd accepts and a property list that is well-formed XML. The console's
//! "Run a Node" page generates the same file and unit (`bitsage_http::onboarding`): its
//! YAML loads here and its unit passes `systemd-analyze verify` too.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitsage_agent::config_file::ConfigError;
use bitsage_agent::{AgentFile, EnrolmentToken};
use bitsage_core::node::Runtime;
use bitsage_core::{NodeId, WalletAddress};
use bitsage_http::onboarding::{AgentYaml, ServiceSpec};

const WALLET: &str = "0x1234";
const TOKEN: &str = "bse_s3cret-Token_value";

/// The variables `run` reads, so that the caller's environment cannot leak into a test.
const AGENT_ENV: [&str; 9] = [
    "BITSAGE_AGENT_CONFIG",
    "BITSAGE_COORDINATOR",
    "BITSAGE_WALLET",
    "BITSAGE_DATA_DIR",
    "BITSAGE_REGION",
    "BITSAGE_RUNTIME",
    "BITSAGE_ENERGY_TAG",
    "BITSAGE_ENROLMENT_TOKEN",
    "RUST_LOG",
];

fn agent_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitsage-agent"));
    cmd.current_dir(dir).args(args);
    for var in AGENT_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run bitsage-agent")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

fn assert_fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure\nstdout:\n{}",
        stdout(out)
    );
    stderr(out)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Writes an `agent.yaml` with `init` in `dir` (data directory `dir/data dir`) and returns it.
fn init_file(dir: &Path) -> PathBuf {
    let data = dir.join("data dir");
    std::fs::create_dir_all(&data).expect("data dir");
    let out = agent_in(
        dir,
        &[
            "init",
            "--coordinator",
            "http://127.0.0.1:9",
            "--wallet",
            WALLET,
            "--data-dir",
            path_str(&data),
            "--shutdown-grace-secs",
            "40",
        ],
        &[],
    );
    assert_ok(&out);
    dir.join("agent.yaml")
}

#[test]
fn init_writes_a_private_file_that_loads_back_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("conf").join("agent.yaml");
    std::fs::create_dir_all(out_file.parent().expect("parent")).expect("conf dir");
    let args = [
        "init",
        "--out",
        "conf/agent.yaml",
        "--coordinator",
        "http://127.0.0.1:8080,http://10.0.0.2:8080",
        "--wallet",
        WALLET,
        "--node-id",
        "rig-7",
        "--data-dir",
        "state dir",
        "--region",
        "eu-west",
        "--runtime",
        "vllm",
        "--label",
        "rack=a1",
        "--label",
        "gpu.tier=1",
        "--energy-tag",
        "renewable",
        "--enrolment-token",
        TOKEN,
        "--max-backoff-secs",
        "10",
    ];
    let out = agent_in(dir.path(), &args, &[]);
    assert_ok(&out);
    assert!(!stdout(&out).contains(TOKEN), "{}", stdout(&out));
    assert!(stdout(&out).contains("run --config"), "{}", stdout(&out));
    assert_eq!(mode(&out_file), 0o600, "the file may hold the token");

    let mut expected = AgentFile::default();
    expected.coordinators = vec![
        "http://127.0.0.1:8080".into(),
        "http://10.0.0.2:8080".into(),
    ];
    expected.wallet = Some(WalletAddress::parse(WALLET).expect("wallet"));
    expected.node_id = Some(NodeId::parse("rig-7").expect("node id"));
    // Paths are written absolute, from where `init` ran.
    expected.data_dir = Some(dir.path().join("state dir"));
    expected.region = Some("eu-west".into());
    expected.runtime = Some(Runtime::Vllm);
    expected.labels = BTreeMap::from([
        ("gpu.tier".to_string(), "1".to_string()),
        ("rack".to_string(), "a1".to_string()),
    ]);
    expected.energy_tag = Some("renewable".into());
    expected.enrolment_token = Some(EnrolmentToken::parse(TOKEN).expect("token"));
    expected.max_backoff_secs = Some(10);
    let loaded = AgentFile::load(&out_file).expect("the written file loads");
    assert_eq!(loaded, expected);
    // And it writes what it reads: a second render is identical.
    assert_eq!(
        AgentFile::from_yaml(&loaded.to_yaml(), &out_file).expect("reload"),
        loaded
    );

    // An existing file is kept unless --force; with it, the file is replaced and private.
    std::fs::set_permissions(&out_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let again = agent_in(dir.path(), &args, &[]);
    let err = assert_fails(&again);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let mut forced = args
        .map(|a| if a == "eu-west" { "us-east" } else { a })
        .to_vec();
    forced.push("--force");
    assert_ok(&agent_in(dir.path(), &forced, &[]));
    assert_eq!(mode(&out_file), 0o600);
    let reloaded = AgentFile::load(&out_file).expect("loads");
    assert_eq!(reloaded.region.as_deref(), Some("us-east"));
}

#[test]
fn an_unknown_key_is_an_error_naming_it_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.yaml"),
        "coordinators:\n  - http://127.0.0.1:9\nwalet: \"0x1234\"\n",
    )
    .expect("write");
    let out = agent_in(
        dir.path(),
        &["run", "--config", "agent.yaml", "--check"],
        &[],
    );
    let err = assert_fails(&out);
    assert!(
        err.contains("agent.yaml: unknown key \"walet\" (expected one of coordinators, wallet,"),
        "{err}"
    );
    assert!(err.contains("did you mean \"wallet\"?"), "{err}");

    match AgentFile::load(dir.path().join("agent.yaml")) {
        Err(ConfigError::UnknownKey {
            key, suggestion, ..
        }) => {
            assert_eq!(key, "walet");
            assert_eq!(suggestion, Some("wallet"));
        }
        other => panic!("expected an unknown key, got {other:?}"),
    }
}

#[test]
fn values_are_checked_with_the_flags_parsers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.yaml");
    for (yaml, key) in [
        ("region: EU West\n", "region"),
        ("runtime: docker\n", "runtime"),
        ("wallet: \"0xnothex\"\n", "wallet"),
        ("labels: {\"Bad Key\": x}\n", "labels"),
        ("coordinators: [\"ftp://x\"]\n", "coordinators"),
        ("energy_tag: \"\"\n", "energy_tag"),
    ] {
        std::fs::write(&path, yaml).expect("write");
        let err = AgentFile::load(&path).expect_err(yaml).to_string();
        assert!(
            err.starts_with(&format!("{}: {key}: ", path.display())),
            "{yaml} → {err}"
        );
    }
    // A malformed token is refused without being repeated.
    std::fs::write(&path, "enrolment_token: \"not a token!\"\n").expect("write");
    let err = AgentFile::load(&path).expect_err("token").to_string();
    assert!(
        err.contains("enrolment_token") && !err.contains("not a token"),
        "{err}"
    );
    let out = agent_in(
        dir.path(),
        &[
            "run",
            "--check",
            "--coordinator",
            "http://127.0.0.1:9",
            "--wallet",
            WALLET,
        ],
        &[("BITSAGE_ENROLMENT_TOKEN", "not a token!")],
    );
    let err = assert_fails(&out);
    assert!(
        err.contains("--enrolment-token") && !err.contains("not a token"),
        "{err}"
    );
    // Wrong types name the key and the line.
    std::fs::write(&path, "shutdown_grace_secs: soon\n").expect("write");
    let err = AgentFile::load(&path).expect_err("type").to_string();
    assert!(
        err.contains("shutdown_grace_secs") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn flags_and_environment_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.yaml"),
        format!(
            "coordinators:\n  - http://127.0.0.1:9\nwallet: \"{WALLET}\"\nregion: eu-west\n\
             labels: {{rack: a1, zone: z1}}\nenrolment_token: {TOKEN}\nkey_file: keys/node.key\n"
        ),
    )
    .expect("write");
    let out = agent_in(
        dir.path(),
        &[
            "run",
            "--config",
            "agent.yaml",
            "--check",
            "--region",
            "us-east",
            "--label",
            "zone=z2",
        ],
        &[
            (
                "BITSAGE_COORDINATOR",
                "http://10.0.0.1:8080,http://10.0.0.2:8080",
            ),
            ("BITSAGE_RUNTIME", "tgi"),
        ],
    );
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        !text.contains(TOKEN),
        "the token must never be printed:\n{text}"
    );
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let get = |k: &str| doc.get(k).cloned().unwrap_or(serde_norway::Value::Null);
    let yaml = |s: &str| serde_norway::from_str::<serde_norway::Value>(s).expect("yaml");
    assert_eq!(
        get("coordinators"),
        yaml("[http://10.0.0.1:8080, http://10.0.0.2:8080]")
    );
    assert_eq!(get("region"), yaml("us-east"));
    assert_eq!(get("runtime"), yaml("tgi"));
    assert_eq!(get("labels"), yaml("{rack: a1, zone: z2}"));
    assert_eq!(get("enrolment_token"), yaml("\"<redacted>\""));
    assert_eq!(get("shutdown_grace_secs"), yaml("30"));
    // A relative path in the file is taken from the file's directory.
    assert_eq!(
        get("key_file"),
        yaml(&format!(
            "\"{}\"",
            path_str(&dir.path().join("keys/node.key"))
        ))
    );
    let wallet = format!("{}", WalletAddress::parse(WALLET).expect("wallet"));
    assert_eq!(get("wallet"), serde_norway::Value::String(wallet));

    // The same file named by BITSAGE_AGENT_CONFIG.
    let out = agent_in(
        dir.path(),
        &["run", "--check"],
        &[("BITSAGE_AGENT_CONFIG", "agent.yaml")],
    );
    assert_ok(&out);
    assert!(stdout(&out).contains("region: eu-west"), "{}", stdout(&out));
}

#[test]
fn a_missing_setting_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.yaml"),
        "coordinators: [\"http://127.0.0.1:9\"]\n",
    )
    .expect("write");
    let out = agent_in(
        dir.path(),
        &["run", "--config", "agent.yaml", "--check"],
        &[],
    );
    let err = assert_fails(&out);
    assert!(
        err.contains(
            "no wallet configured: set `wallet:` in the configuration file (--config FILE) \
             or pass --wallet (environment BITSAGE_WALLET)"
        ),
        "{err}"
    );

    // ./agent.yaml is not read unless named: without --config the coordinator is missing.
    std::fs::write(
        dir.path().join("agent.yaml"),
        format!("coordinators: [\"http://127.0.0.1:9\"]\nwallet: \"{WALLET}\"\n"),
    )
    .expect("write");
    let out = agent_in(dir.path(), &["run", "--check"], &[]);
    let err = assert_fails(&out);
    assert!(err.contains("no coordinator URL configured"), "{err}");
    assert!(
        err.contains("--coordinator") && err.contains("coordinators:"),
        "{err}"
    );
}

/// The node's `systemd-analyze`, or `None` (outside CI) when this host has none.
fn systemd_analyze() -> Option<PathBuf> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is required in CI to check the generated unit"
        );
        eprintln!("skipping: systemd-analyze is not installed on this host");
    }
    found
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Spaces, `%` and `$` in every path that goes into the unit.
    let base = dir.path().join("bit sage 100%$x");
    std::fs::create_dir_all(&base).expect("base");
    let config = init_file(&base);
    let bin_dir = base.join("bin dir");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    let binary = bin_dir.join("bitsage agent");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_bitsage-agent"), &binary).expect("symlink");
    let unit = base.join("bitsage-agent.service");
    let out = agent_in(
        &base,
        &[
            "service",
            "--systemd",
            "--config",
            "agent.yaml",
            "--binary",
            path_str(&binary),
            "--out",
            path_str(&unit),
        ],
        &[],
    );
    assert_ok(&out);
    let text = std::fs::read_to_string(&unit).expect("unit");
    let esc = |p: &Path| path_str(p).replace('%', "%%");
    let exec = format!(
        "ExecStart=\"{}\" run --config \"{}\"\n",
        esc(&binary),
        esc(&config).replace('$', "$$")
    );
    assert!(text.contains(&exec), "{exec}\n{text}");
    for line in [
        "After=network-online.target\n",
        "Wants=network-online.target\n",
        "Type=simple\n",
        "Restart=on-failure\n",
        "RestartSec=5\n",
        "KillSignal=SIGTERM\n",
        // The file's shutdown grace (40 s) and time to exit.
        "TimeoutStopSec=55\n",
        "NoNewPrivileges=yes\n",
        "ProtectSystem=strict\n",
        "PrivateTmp=yes\n",
        "Environment=RUST_LOG=info\n",
        "WantedBy=multi-user.target\n",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    let data = base.join("data dir");
    assert!(
        text.contains(&format!("ReadWritePaths=\"{}\"\n", esc(&data))),
        "{text}"
    );

    // A path that is not allowed in a unit is refused, not written.
    let out = agent_in(
        &base,
        &[
            "service",
            "--systemd",
            "--config",
            "agent.yaml",
            "--user",
            "a b",
        ],
        &[],
    );
    assert!(assert_fails(&out).contains("is not a user name"));

    assert_systemd_verifies(&unit, &text);
}

/// `systemd-analyze verify` accepts the unit file `unit` (named `bitsage-agent.service`,
/// holding `text`) without complaints; skipped outside CI where systemd-analyze is missing.
fn assert_systemd_verifies(unit: &Path, text: &str) {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let verify = Command::new(analyze)
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze");
    let err = stderr(&verify);
    assert!(
        verify.status.success(),
        "systemd-analyze verify failed:\n{err}\n{text}"
    );
    // Warnings about this unit (unknown keys, bad quoting) fail the test too.
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("bitsage-agent.service") || l.contains("ignoring"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}\n{text}");
}

/// The console's "Run a Node" settings for Linux ([`ServiceSpec`] there), with the paths
/// replaced by `binary`, `config` and `data_dir`.
fn console_linux_spec(binary: &Path, config: &Path, data_dir: &Path) -> ServiceSpec {
    ServiceSpec {
        binary: binary.to_path_buf(),
        config: config.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        user: Some("bitsage".into()),
        shutdown_grace_secs: 30,
    }
}

#[test]
fn the_consoles_agent_yaml_loads_with_the_agents_loader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.yaml");
    let wallet = "0x049d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7";
    // YAML's special characters in a path, to exercise the console's quoting.
    let data_dir = "/srv/bit sage: #1 \"x\" 'y'";
    for runtime in Runtime::ALL {
        for token in [Some(TOKEN), None] {
            let console = AgentYaml {
                coordinators: vec![
                    "http://127.0.0.1:8080".into(),
                    "http://coordinator.example:8443".into(),
                ],
                wallet: wallet.into(),
                region: Some("eu-west".into()),
                runtime: Some(runtime.as_str().into()),
                enrolment_token: token.map(Into::into),
                data_dir: Some(data_dir.into()),
                energy_tag: Some("renewable".into()),
                labels: vec![
                    ("rack".into(), "a1".into()),
                    ("gpu.tier".into(), "1".into()),
                ],
            };
            let text = console.to_yaml();
            if token.is_none() {
                assert!(
                    text.lines().any(|l| l.starts_with("# enrolment_token:")),
                    "the placeholder is a comment:\n{text}"
                );
            }

            let mut expected = AgentFile::default();
            expected.coordinators = console.coordinators.clone();
            expected.wallet = Some(WalletAddress::parse(wallet).expect("wallet"));
            expected.data_dir = Some(PathBuf::from(data_dir));
            expected.region = Some("eu-west".into());
            expected.runtime = Some(runtime);
            expected.labels = BTreeMap::from([
                ("gpu.tier".to_string(), "1".to_string()),
                ("rack".to_string(), "a1".to_string()),
            ]);
            expected.energy_tag = Some("renewable".into());
            expected.enrolment_token = token.map(|t| EnrolmentToken::parse(t).expect("token"));

            let parsed = AgentFile::from_yaml(&text, &path)
                .unwrap_or_else(|e| panic!("the console's YAML loads: {e}\n{text}"));
            assert_eq!(parsed, expected, "{text}");
            std::fs::write(&path, &text).expect("write");
            assert_eq!(AgentFile::load(&path).expect("load"), expected, "{text}");
        }
    }
}

#[test]
fn the_consoles_systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let config = dir.path().join("agent.yaml");
    let yaml = AgentYaml {
        coordinators: vec!["http://127.0.0.1:9".into()],
        wallet: WALLET.into(),
        data_dir: Some(path_str(&data).into()),
        ..Default::default()
    };
    std::fs::write(&config, yaml.to_yaml()).expect("write");
    let binary = Path::new(env!("CARGO_BIN_EXE_bitsage-agent"));
    let text = console_linux_spec(binary, &config, &data)
        .systemd_unit()
        .expect("unit");
    for line in [
        "User=bitsage\n".to_string(),
        format!(
            "ExecStart={} run --config {}\n",
            path_str(binary),
            path_str(&config)
        ),
        format!("ReadWritePaths={}\n", path_str(&data)),
        "TimeoutStopSec=45\n".to_string(),
    ] {
        assert!(text.contains(&line), "{line}\n{text}");
    }
    let unit = dir.path().join("bitsage-agent.service");
    std::fs::write(&unit, &text).expect("write unit");
    assert_systemd_verifies(&unit, &text);
}

/// A parsed XML element: name, attributes, children.
#[derive(Debug)]
enum Xml {
    Element(String, Vec<Xml>),
    Text(String),
}

/// A strict parser for the XML subset a property list uses: a declaration, a doctype,
/// comments, elements, attributes and text with the five predefined entities. It panics on
/// anything malformed (unbalanced tags, a raw `<` or `&`, an unknown entity, `--` in a
/// comment).
fn parse_xml(s: &str) -> Xml {
    fn unescape(t: &str) -> String {
        let mut out = String::new();
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find(';').expect("unterminated entity") + i;
            out.push(match &rest[i + 1..end] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                other => panic!("unknown entity &{other};"),
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
    let mut stack: Vec<(String, Vec<Xml>)> = vec![("#document".into(), Vec::new())];
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after.find("?>").expect("unterminated declaration");
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").expect("unterminated comment");
            assert!(!after[..end].contains("--"), "`--` inside a comment");
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("<!DOCTYPE") {
            let end = after.find('>').expect("unterminated doctype");
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').expect("unterminated end tag");
            let name = after[..end].trim();
            let (open, children) = stack.pop().expect("end tag without start");
            assert_eq!(open, name, "mismatched end tag");
            stack
                .last_mut()
                .expect("parent")
                .1
                .push(Xml::Element(open, children));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').expect("unterminated start tag");
            let tag = &after[..end];
            let (tag, empty) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let name = tag.split_whitespace().next().expect("tag name").to_string();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad tag name {name:?}"
            );
            // Attributes: name="value" pairs, values escaped.
            let attrs = tag[name.len()..].trim();
            let mut a = attrs;
            while !a.is_empty() {
                let eq = a.find("=\"").expect("attribute");
                let close = a[eq + 2..].find('"').expect("attribute value") + eq + 2;
                assert!(!a[eq + 2..close].contains('<'));
                unescape(&a[eq + 2..close]);
                a = a[close + 1..].trim_start();
            }
            if empty {
                stack
                    .last_mut()
                    .expect("parent")
                    .1
                    .push(Xml::Element(name, Vec::new()));
            } else {
                stack.push((name, Vec::new()));
            }
            rest = &after[end + 1..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            assert!(!text.contains('>'), "raw `>` in text {text:?}");
            let text = unescape(text);
            if !text.trim().is_empty() {
                stack.last_mut().expect("parent").1.push(Xml::Text(text));
            }
            rest = &rest[end..];
        }
    }
    let (name, mut children) = stack.pop().expect("document");
    assert_eq!(name, "#document", "unclosed element");
    assert!(stack.is_empty());
    assert_eq!(children.len(), 1, "one root element");
    children.remove(0)
}

/// A property list value.
#[derive(Debug, PartialEq)]
enum Plist {
    Dict(BTreeMap<String, Plist>),
    Array(Vec<Plist>),
    String(String),
    Integer(i64),
    Bool(bool),
}

fn plist_value(x: &Xml) -> Plist {
    let Xml::Element(name, children) = x else {
        panic!("text where a value was expected: {x:?}");
    };
    let text = || match children.as_slice() {
        [] => String::new(),
        [Xml::Text(t)] => t.clone(),
        other => panic!("{name} holds {other:?}"),
    };
    match name.as_str() {
        "dict" => {
            let mut map = BTreeMap::new();
            for pair in children.chunks(2) {
                let [Xml::Element(k, key), value] = pair else {
                    panic!("a dict holds key/value pairs: {pair:?}");
                };
                assert_eq!(k, "key");
                let [Xml::Text(key)] = key.as_slice() else {
                    panic!("key {key:?}");
                };
                assert!(map.insert(key.clone(), plist_value(value)).is_none());
            }
            Plist::Dict(map)
        }
        "array" => Plist::Array(children.iter().map(plist_value).collect()),
        "string" => Plist::String(text()),
        "integer" => Plist::Integer(text().parse().expect("integer")),
        "true" => Plist::Bool(true),
        "false" => Plist::Bool(false),
        other => panic!("unexpected plist element {other}"),
    }
}

#[test]
fn the_launchd_plist_is_well_formed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // XML's special characters and a space in the paths.
    let base = dir.path().join("a & b <c> \"d\" 'e'");
    std::fs::create_dir_all(&base).expect("base");
    let config = init_file(&base);
    let out = agent_in(
        &base,
        &[
            "service",
            "--launchd",
            "--config",
            "agent.yaml",
            "--binary",
            "/usr/local/bin/bitsage-agent",
            "--user",
            "_bitsage",
        ],
        &[],
    );
    assert_ok(&out);
    let text = stdout(&out);
    let root = parse_xml(&text);
    let Xml::Element(name, children) = &root else {
        panic!("root {root:?}");
    };
    assert_eq!(name, "plist");
    let [dict] = children.as_slice() else {
        panic!("plist holds one dict: {children:?}");
    };
    let Plist::Dict(job) = plist_value(dict) else {
        panic!("not a dict");
    };
    let s = |v: &str| Plist::String(v.to_string());
    let data = base.join("data dir");
    assert_eq!(job["Label"], s("network.bitsage.agent"));
    assert_eq!(
        job["ProgramArguments"],
        Plist::Array(vec![
            s("/usr/local/bin/bitsage-agent"),
            s("run"),
            s("--config"),
            s(path_str(&config)),
        ])
    );
    assert_eq!(job["RunAtLoad"], Plist::Bool(true));
    assert_eq!(
        job["KeepAlive"],
        Plist::Dict(BTreeMap::from([(
            "SuccessfulExit".to_string(),
            Plist::Bool(false)
        )]))
    );
    assert_eq!(job["UserName"], s("_bitsage"));
    assert_eq!(job["ExitTimeOut"], Plist::Integer(55));
    assert_eq!(
        job["StandardOutPath"],
        s(path_str(&data.join("agent.out.log")))
    );
    assert_eq!(
        job["StandardErrorPath"],
        s(path_str(&data.join("agent.err.log")))
    );
}

#[test]
fn service_needs_a_config_and_a_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.yaml"),
        format!("coordinators: [\"http://127.0.0.1:9\"]\nwallet: \"{WALLET}\"\n"),
    )
    .expect("write");
    let out = agent_in(
        dir.path(),
        &["service", "--systemd", "--config", "agent.yaml"],
        &[],
    );
    let err = assert_fails(&out);
    assert!(
        err.contains("data_dir") && err.contains("--data-dir"),
        "{err}"
    );
    let out = agent_in(
        dir.path(),
        &["service", "--systemd", "--config", "missing.yaml"],
        &[],
    );
    assert!(assert_fails(&out).contains("missing.yaml"));
    // One of --systemd / --launchd is required.
    let out = agent_in(dir.path(), &["service", "--config", "agent.yaml"], &[]);
    assert_fails(&out);
}
