//! `agent.yaml`: the agent's configuration file.
//!
//! `bitsage-agent run --config FILE` reads it ([`AgentFile::load`]); flags and environment
//! variables override its values ([`AgentFile::overridden_by`]), and the result is checked and
//! completed ([`AgentFile::resolve`] → [`RunSettings`]). `bitsage-agent init` writes one
//! ([`AgentFile::write`]). The operator console generates the same file, so the key names
//! ([`KEYS`]) are a contract.
//!
//! Loading is strict: an unknown key is an error naming it and the file (a typo such as
//! `walet` must not leave the node running without the setting), and every value is checked
//! with the parser its flag uses (the `parse_*` functions here). Relative paths in the file
//! are taken from the file's directory, so a service started in `/` finds them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitsage_core::node::{NodeProfile, Runtime};
use bitsage_core::{NodeId, WalletAddress};
use serde::Deserialize;

use crate::enrolment::EnrolmentToken;
use crate::key::{default_key_path, KEY_FILE_NAME};
use crate::{AgentConfig, KeySource, WalletSigner};

/// Every key `agent.yaml` may hold, in the order [`AgentFile::to_yaml`] writes them.
pub const KEYS: [&str; 14] = [
    "coordinators",
    "wallet",
    "node_id",
    "key_file",
    "data_dir",
    "region",
    "runtime",
    "labels",
    "energy_tag",
    "enrolment_token",
    "wallet_key",
    "wallet_proof",
    "shutdown_grace_secs",
    "max_backoff_secs",
];

/// How long a proof in progress at shutdown may take when nothing says otherwise, seconds.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// The longest wait between reconnection attempts when nothing says otherwise, seconds.
pub const DEFAULT_MAX_BACKOFF_SECS: u64 = 30;

/// Why a configuration file could not be read or written, or the settings are incomplete.
/// Messages name the file and the key (never the enrolment token's value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading the file failed.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape (syntax, or a value of the wrong type).
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said, with the line.
        message: String,
    },
    /// A key the file format does not have.
    #[error(
        "{}: unknown key {key:?} (expected one of {}){}",
        path.display(),
        KEYS.join(", "),
        suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default()
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// The known key it is closest to, if it looks like a typo.
        suggestion: Option<&'static str>,
    },
    /// A value its flag's parser refuses.
    #[error("{}: {key}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Why the value is refused.
        message: String,
    },
    /// A required setting given nowhere.
    #[error(
        "no {setting} configured: set `{key}:` in the configuration file (--config FILE) \
         or pass {flag} (environment {env})"
    )]
    Missing {
        /// What is missing, in words.
        setting: &'static str,
        /// Its key in the file.
        key: &'static str,
        /// Its flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
    },
    /// No node key file could be chosen.
    #[error(
        "no node key file: set `key_file:` or `data_dir:` in the configuration file, pass \
         --key-file or --data-dir (environment BITSAGE_DATA_DIR), or set HOME"
    )]
    NoKeyFile,
    /// Two settings that exclude each other are both given.
    #[error("{0}")]
    Conflict(&'static str),
    /// Region, runtime, labels and energy tag together are not a valid profile.
    #[error("the node profile (region, runtime, labels, energy tag): {0}")]
    Profile(#[source] bitsage_core::Error),
    /// The file to write exists and overwriting was not asked for.
    #[error("{} already exists (pass --force to overwrite it)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Writing the file failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The settings of an `agent.yaml`, checked: every value passed its flag's parser. Unset
/// keys are `None` or empty. Also the shape of the flags' layer in
/// [`AgentFile::overridden_by`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentFile {
    /// `coordinators`: base URLs, tried in order (`--coordinator`).
    pub coordinators: Vec<String>,
    /// `wallet`: the wallet the node earns for (`--wallet`).
    pub wallet: Option<WalletAddress>,
    /// `node_id` (`--node-id`; default derived from the key).
    pub node_id: Option<NodeId>,
    /// `key_file` (`--key-file`; default `data_dir/node.key`).
    pub key_file: Option<PathBuf>,
    /// `data_dir`: where the default key file lives (`--data-dir`, `BITSAGE_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
    /// `region` (`--region`).
    pub region: Option<String>,
    /// `runtime` (`--runtime`).
    pub runtime: Option<Runtime>,
    /// `labels`, at most [`bitsage_core::node::MAX_LABELS`] (`--label`).
    pub labels: BTreeMap<String, String>,
    /// `energy_tag` (`--energy-tag`).
    pub energy_tag: Option<String>,
    /// `enrolment_token` (`--enrolment-token`).
    pub enrolment_token: Option<EnrolmentToken>,
    /// `wallet_key`: a Stark private key file proving the wallet (`--wallet-key`).
    pub wallet_key: Option<PathBuf>,
    /// `wallet_proof`: a wallet proof file made beforehand (`--wallet-proof`).
    pub wallet_proof: Option<PathBuf>,
    /// `shutdown_grace_secs` (`--shutdown-grace-secs`).
    pub shutdown_grace_secs: Option<u64>,
    /// `max_backoff_secs` (`--max-backoff-secs`).
    pub max_backoff_secs: Option<u64>,
}

/// The file as YAML gives it, before the values are checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    coordinators: Option<Vec<String>>,
    wallet: Option<String>,
    node_id: Option<String>,
    key_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    region: Option<String>,
    runtime: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    energy_tag: Option<String>,
    enrolment_token: Option<String>,
    wallet_key: Option<PathBuf>,
    wallet_proof: Option<PathBuf>,
    shutdown_grace_secs: Option<u64>,
    max_backoff_secs: Option<u64>,
}

/// Checks a coordinator base URL as the agent's HTTP client will (`--coordinator`).
pub fn parse_coordinator(s: &str) -> Result<String, String> {
    bitsage_http::client::CoordinatorClient::new(s).map_err(|e| e.to_string())?;
    Ok(s.trim().to_string())
}

/// Parses a wallet address (`--wallet`).
pub fn parse_wallet(s: &str) -> Result<WalletAddress, String> {
    WalletAddress::parse(s).map_err(|e| e.to_string())
}

/// Parses a node id (`--node-id`).
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::parse(s).map_err(|e| e.to_string())
}

/// Checks a region (`--region`).
pub fn parse_region(s: &str) -> Result<String, String> {
    bitsage_core::node::check_region(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// Parses a serving runtime (`--runtime`).
pub fn parse_runtime(s: &str) -> Result<Runtime, String> {
    Runtime::parse(s).map_err(|e| e.to_string())
}

/// Parses a label `key=value` (`--label`); the value is checked with the whole profile.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("a label is `key=value`")?;
    bitsage_core::node::check_label_key(k).map_err(|e| e.to_string())?;
    Ok((k.to_string(), v.to_string()))
}

/// Checks an energy tag (`--energy-tag`).
pub fn parse_energy_tag(s: &str) -> Result<String, String> {
    bitsage_core::node::check_energy_tag(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// Checks an enrolment token's shape (`--enrolment-token`); the error never repeats it.
pub fn parse_enrolment_token(s: &str) -> Result<EnrolmentToken, String> {
    EnrolmentToken::parse(s)
}

impl AgentFile {
    /// Reads and checks the file at `path`. Relative paths inside it are taken from the
    /// file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and checks `text` as the content of the file at `path` (named in errors; its
    /// directory is the base of relative paths). The file need not exist.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let syntax = |e: serde_norway::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        // Keys are checked on the generic value first, so that an unknown one gets its own
        // message (with a suggestion) rather than serde's.
        let raw = match serde_norway::from_str::<serde_norway::Value>(text).map_err(syntax)? {
            serde_norway::Value::Null => RawFile::default(),
            serde_norway::Value::Mapping(map) => {
                for key in map.keys() {
                    match key.as_str() {
                        Some(k) if KEYS.contains(&k) => {}
                        _ => {
                            let key = match key.as_str() {
                                Some(k) => k.to_string(),
                                None => serde_norway::to_string(key)
                                    .map(|s| s.trim_end().to_string())
                                    .unwrap_or_else(|_| format!("{key:?}")),
                            };
                            return Err(ConfigError::UnknownKey {
                                path: path.to_path_buf(),
                                suggestion: suggest(&key),
                                key,
                            });
                        }
                    }
                }
                serde_norway::from_str::<RawFile>(text).map_err(syntax)?
            }
            _ => {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: "expected `key: value` settings at the top level".into(),
                })
            }
        };
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        Self::from_raw(raw, path, &base)
    }

    fn from_raw(raw: RawFile, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        fn check<T>(
            path: &Path,
            key: &'static str,
            value: Option<String>,
            parse: fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, ConfigError> {
            value
                .map(|v| {
                    parse(&v).map_err(|message| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key,
                        message,
                    })
                })
                .transpose()
        }
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let resolve = |p: Option<PathBuf>| p.map(|p| base.join(p));
        let coordinators = raw
            .coordinators
            .unwrap_or_default()
            .iter()
            .map(|u| parse_coordinator(u).map_err(|m| invalid("coordinators", m)))
            .collect::<Result<Vec<_>, _>>()?;
        let labels = raw.labels.unwrap_or_default();
        // The labels alone, checked as the profile will check them (count, keys, values).
        NodeProfile {
            labels: labels.clone(),
            ..NodeProfile::default()
        }
        .validate()
        .map_err(|e| invalid("labels", e.to_string()))?;
        if raw.wallet_key.is_some() && raw.wallet_proof.is_some() {
            return Err(invalid(
                "wallet_proof",
                "wallet_key and wallet_proof are alternatives: give one".into(),
            ));
        }
        Ok(Self {
            coordinators,
            wallet: check(path, "wallet", raw.wallet, parse_wallet)?,
            node_id: check(path, "node_id", raw.node_id, parse_node_id)?,
            key_file: resolve(raw.key_file),
            data_dir: resolve(raw.data_dir),
            region: check(path, "region", raw.region, parse_region)?,
            runtime: check(path, "runtime", raw.runtime, parse_runtime)?,
            labels,
            energy_tag: check(path, "energy_tag", raw.energy_tag, parse_energy_tag)?,
            enrolment_token: check(
                path,
                "enrolment_token",
                raw.enrolment_token,
                parse_enrolment_token,
            )?,
            wallet_key: resolve(raw.wallet_key),
            wallet_proof: resolve(raw.wallet_proof),
            shutdown_grace_secs: raw.shutdown_grace_secs,
            max_backoff_secs: raw.max_backoff_secs,
        })
    }

    /// These settings with `over`'s in their place wherever `over` sets one (flags and
    /// environment over the file): each set value replaces, a non-empty coordinator list
    /// replaces the whole list, labels are merged key by key (`over` wins), and a wallet key
    /// or proof in `over` replaces both of the file's (they are alternatives).
    pub fn overridden_by(self, over: AgentFile) -> AgentFile {
        let mut labels = self.labels;
        labels.extend(over.labels);
        let (wallet_key, wallet_proof) = if over.wallet_key.is_some() || over.wallet_proof.is_some()
        {
            (over.wallet_key, over.wallet_proof)
        } else {
            (self.wallet_key, self.wallet_proof)
        };
        AgentFile {
            coordinators: if over.coordinators.is_empty() {
                self.coordinators
            } else {
                over.coordinators
            },
            wallet: over.wallet.or(self.wallet),
            node_id: over.node_id.or(self.node_id),
            key_file: over.key_file.or(self.key_file),
            data_dir: over.data_dir.or(self.data_dir),
            region: over.region.or(self.region),
            runtime: over.runtime.or(self.runtime),
            labels,
            energy_tag: over.energy_tag.or(self.energy_tag),
            enrolment_token: over.enrolment_token.or(self.enrolment_token),
            wallet_key,
            wallet_proof,
            shutdown_grace_secs: over.shutdown_grace_secs.or(self.shutdown_grace_secs),
            max_backoff_secs: over.max_backoff_secs.or(self.max_backoff_secs),
        }
    }

    /// Checks that the settings are complete and consistent and fills in the defaults: a
    /// coordinator and a wallet are required; the key file defaults to `data_dir/node.key`,
    /// else [`default_key_path`].
    pub fn resolve(self) -> Result<RunSettings, ConfigError> {
        if self.coordinators.is_empty() {
            return Err(ConfigError::Missing {
                setting: "coordinator URL",
                key: "coordinators",
                flag: "--coordinator",
                env: "BITSAGE_COORDINATOR",
            });
        }
        let wallet = self.wallet.ok_or(ConfigError::Missing {
            setting: "wallet",
            key: "wallet",
            flag: "--wallet",
            env: "BITSAGE_WALLET",
        })?;
        if self.wallet_key.is_some() && self.wallet_proof.is_some() {
            return Err(ConfigError::Conflict(
                "wallet_key (--wallet-key) and wallet_proof (--wallet-proof) are alternatives: \
                 give one",
            ));
        }
        let key_file = match (self.key_file, &self.data_dir) {
            (Some(k), _) => k,
            (None, Some(dir)) => dir.join(KEY_FILE_NAME),
            (None, None) => default_key_path().ok_or(ConfigError::NoKeyFile)?,
        };
        let profile = (self.region.is_some()
            || self.runtime.is_some()
            || !self.labels.is_empty()
            || self.energy_tag.is_some())
        .then(|| NodeProfile {
            region: self.region,
            runtime: self.runtime.unwrap_or_default(),
            labels: self.labels,
            energy_tag: self.energy_tag,
        });
        if let Some(p) = &profile {
            p.validate().map_err(ConfigError::Profile)?;
        }
        Ok(RunSettings {
            coordinators: self.coordinators,
            wallet,
            node_id: self.node_id,
            key_file,
            data_dir: self.data_dir,
            profile,
            enrolment_token: self.enrolment_token,
            wallet_key: self.wallet_key,
            wallet_proof: self.wallet_proof,
            shutdown_grace_secs: self
                .shutdown_grace_secs
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            max_backoff_secs: self.max_backoff_secs.unwrap_or(DEFAULT_MAX_BACKOFF_SECS),
        })
    }

    /// The file's text: every key with a comment saying what it is, unset ones commented out
    /// with an example. [`AgentFile::load`] reads it back equal (paths written absolute).
    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# bitsage-agent configuration: `bitsage-agent run --config <this file>`.\n\
             # Flags and environment variables override these values; check the result with\n\
             # `bitsage-agent run --config <this file> --check`.\n\
             # It may hold the enrolment token: keep it private (mode 0600).\n",
        );
        self.render(&mut out, false);
        out
    }

    /// Writes [`AgentFile::to_yaml`] to `path` with mode `0600` (it may hold the enrolment
    /// token). An existing file is refused ([`ConfigError::Exists`]) unless `overwrite`;
    /// an overwritten file is made `0600` before anything is written to it.
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<(), ConfigError> {
        let write_err = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true);
        if overwrite {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ConfigError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                write_err(e)
            }
        })?;
        // `mode` applies to new files only; an overwritten one keeps its old mode otherwise.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(write_err)?;
        }
        file.write_all(self.to_yaml().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_err)
    }

    /// Appends every key, commented, to `out`; the token shown as `<redacted>` if asked.
    fn render(&self, out: &mut String, redact_token: bool) {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| scalar(&p.to_string_lossy()));
        let text = |s: &Option<String>| s.as_deref().map(scalar);
        out.push_str(
            "\n# The coordinators' base URLs (plain HTTP), tried in order, failing over when one\n\
             # cannot be reached. Required (here or --coordinator).\n",
        );
        if self.coordinators.is_empty() {
            out.push_str("# coordinators:\n#   - http://127.0.0.1:8080\n");
        } else {
            out.push_str("coordinators:\n");
            for c in &self.coordinators {
                out.push_str(&format!("  - {}\n", scalar(c)));
            }
        }
        entry(
            out,
            "wallet",
            "The Starknet wallet address the node earns for. Required (here or --wallet).",
            self.wallet.map(|w| scalar(&w.to_string())),
            "\"0x…\"",
        );
        entry(
            out,
            "node_id",
            "The node id (default: `node-` and 16 hex digits of the node's public key).",
            self.node_id.as_ref().map(|n| scalar(n.as_str())),
            "node-0123456789abcdef",
        );
        entry(
            out,
            "key_file",
            "The node key file, created (mode 0600) if missing (default: data_dir/node.key).",
            path(&self.key_file),
            "/var/lib/bitsage-agent/node.key",
        );
        entry(
            out,
            "data_dir",
            "The agent's data directory, home of the default key file (default ~/.bitsage).",
            path(&self.data_dir),
            "/var/lib/bitsage-agent",
        );
        entry(
            out,
            "region",
            "The region this node is placed in, shown to operators (e.g. eu-west).",
            text(&self.region),
            "eu-west",
        );
        entry(
            out,
            "runtime",
            "The serving runtime: native, ollama, vllm, tensorrtllm or tgi (default native).",
            self.runtime.map(|r| r.as_str().to_string()),
            "native",
        );
        out.push_str(&format!(
            "\n# Labels `key: value`, shown to operators and filterable (at most {}).\n",
            bitsage_core::node::MAX_LABELS
        ));
        if self.labels.is_empty() {
            out.push_str("# labels: {rack: a1}\n");
        } else {
            out.push_str("labels:\n");
            for (k, v) in &self.labels {
                out.push_str(&format!("  {}: {}\n", scalar(k), scalar(v)));
            }
        }
        entry(
            out,
            "energy_tag",
            "The node's energy tag (e.g. renewable).",
            text(&self.energy_tag),
            "renewable",
        );
        entry(
            out,
            "enrolment_token",
            "The enrolment token from the operator console: ties this node to your\n\
             # organisation. A secret: keep this file private.",
            self.enrolment_token.as_ref().map(|t| {
                if redact_token {
                    "\"<redacted>\"".to_string()
                } else {
                    scalar(t.expose())
                }
            }),
            "bse_…",
        );
        entry(
            out,
            "wallet_key",
            "Prove the wallet at registration with this Stark private key file (mode 0600).",
            path(&self.wallet_key),
            "/etc/bitsage-agent/wallet.key",
        );
        entry(
            out,
            "wallet_proof",
            "Or prove it with a proof made beforehand (`bitsage-agent wallet typed-data`).",
            path(&self.wallet_proof),
            "/etc/bitsage-agent/wallet-proof.json",
        );
        entry(
            out,
            "shutdown_grace_secs",
            "How long a proof in progress at shutdown may take to finish, seconds.",
            self.shutdown_grace_secs.map(|s| s.to_string()),
            "30",
        );
        entry(
            out,
            "max_backoff_secs",
            "The longest wait between reconnection attempts, seconds.",
            self.max_backoff_secs.map(|s| s.to_string()),
            "30",
        );
    }
}

/// Appends `# comment` and `key: value`, or `# key: example` when unset.
fn entry(out: &mut String, key: &str, comment: &str, value: Option<String>, example: &str) {
    out.push_str(&format!("\n# {comment}\n"));
    match value {
        Some(v) => out.push_str(&format!("{key}: {v}\n")),
        None => out.push_str(&format!("# {key}: {example}\n")),
    }
}

/// `s` as a one-line YAML scalar: plain when YAML reads it back as this string, else quoted.
fn scalar(s: &str) -> String {
    if let Ok(yaml) = serde_norway::to_string(s) {
        let yaml = yaml.strip_suffix('\n').unwrap_or(&yaml);
        if !yaml.contains('\n') && !yaml.starts_with(['|', '>']) {
            return yaml.to_string();
        }
    }
    // A JSON string is a YAML double-quoted scalar, always on one line.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// The known key within two edits of `key`, if any (a likely typo).
fn suggest(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The settings `run` works with: the file's values under flags and environment, checked,
/// with the defaults filled in ([`AgentFile::resolve`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunSettings {
    /// Coordinator base URLs, at least one, tried in order.
    pub coordinators: Vec<String>,
    /// The wallet the node earns for.
    pub wallet: WalletAddress,
    /// The node id (`None`: derived from the key).
    pub node_id: Option<NodeId>,
    /// The node key file.
    pub key_file: PathBuf,
    /// The data directory, when one is configured.
    pub data_dir: Option<PathBuf>,
    /// Region, runtime, labels and energy tag, when any is configured.
    pub profile: Option<NodeProfile>,
    /// The enrolment token, when one is configured.
    pub enrolment_token: Option<EnrolmentToken>,
    /// The Stark private key file proving the wallet.
    pub wallet_key: Option<PathBuf>,
    /// The wallet proof file.
    pub wallet_proof: Option<PathBuf>,
    /// How long a proof in progress at shutdown may take, seconds.
    pub shutdown_grace_secs: u64,
    /// The longest wait between reconnection attempts, seconds.
    pub max_backoff_secs: u64,
}

impl RunSettings {
    /// The agent's configuration from these settings, proving the wallet with
    /// `wallet_signer` (loaded by the caller from [`RunSettings::wallet_key`] or
    /// [`RunSettings::wallet_proof`]).
    pub fn agent_config(&self, wallet_signer: WalletSigner) -> AgentConfig {
        let mut urls = self.coordinators.iter().cloned();
        let first = urls.next().unwrap_or_default();
        let mut config =
            AgentConfig::new(first, self.wallet, KeySource::File(self.key_file.clone()));
        config.failover_urls = urls.collect();
        config.node_id = self.node_id.clone();
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        config.max_backoff = Duration::from_secs(self.max_backoff_secs.max(1));
        config.wallet_signer = wallet_signer;
        config.profile = self.profile.clone();
        config.enrolment_token = self.enrolment_token.clone();
        config
    }

    /// These settings in the file's format, for `run --check`: the enrolment token shown as
    /// `<redacted>`, `source` (the configuration file, if any) named in the header.
    pub fn to_check_yaml(&self, source: Option<&Path>) -> String {
        let profile = self.profile.clone().unwrap_or_default();
        let file = AgentFile {
            coordinators: self.coordinators.clone(),
            wallet: Some(self.wallet),
            node_id: self.node_id.clone(),
            key_file: Some(self.key_file.clone()),
            data_dir: self.data_dir.clone(),
            region: profile.region,
            runtime: self.profile.as_ref().map(|p| p.runtime),
            labels: profile.labels,
            energy_tag: profile.energy_tag,
            enrolment_token: self.enrolment_token.clone(),
            wallet_key: self.wallet_key.clone(),
            wallet_proof: self.wallet_proof.clone(),
            shutdown_grace_secs: Some(self.shutdown_grace_secs),
            max_backoff_secs: Some(self.max_backoff_secs),
        };
        let mut out = String::from(
            "# The effective configuration of `bitsage-agent run`: the file's values under\n\
             # flags and environment variables, defaults filled in. The enrolment token is\n\
             # never shown.\n",
        );
        if let Some(source) = source {
            out.push_str(&format!("# Configuration file: {}\n", source.display()));
        }
        file.render(&mut out, true);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_the_same_string() {
        for s in [
            "plain",
            "0x1234",
            "123",
            "true",
            "null",
            "~",
            "a: b",
            "# not a comment",
            "- dash",
            "'quoted'",
            "\"dq\"",
            "with\nnewline",
            "tab\there",
            "/path with spaces/x",
            "ünïcode",
            "",
            " lead",
            "trail ",
        ] {
            let y = scalar(s);
            assert!(!y.contains('\n'), "{y}");
            let back: String = serde_norway::from_str(&y).expect(&y);
            assert_eq!(back, s, "{y}");
        }
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(suggest("walet"), Some("wallet"));
        assert_eq!(suggest("coordinator"), Some("coordinators"));
        assert_eq!(suggest("completely_else"), None);
    }
}
