//! What a new node's operator installs: the agent's configuration file (`agent.yaml`,
//! [`AgentYaml`]) and its service definition (a systemd unit or a launchd property list,
//! [`ServiceSpec`]), as text. The one source for the console's "Run a Node" page and the
//! agent's `service` command, so the two never drift (the agent's tests load this YAML with
//! the agent's own loader and check this unit with `systemd-analyze verify`).
//!
//! Paths go into a service definition verbatim, so they are checked first (absolute, UTF-8,
//! no control characters) and then quoted by each format's own rules: systemd's command-line
//! quoting with `%` and `$` doubled, XML escaping for launchd.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The settings an `agent.yaml` carries (keys as the agent reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentYaml {
    /// Coordinator base URLs, in failover order (at least one).
    pub coordinators: Vec<String>,
    /// The wallet the node earns for (`0x…`).
    pub wallet: String,
    /// The node's region (e.g. `eu-west`).
    pub region: Option<String>,
    /// The serving runtime (`native`, `ollama`, `vllm`, `tensorrtllm`, `tgi`).
    pub runtime: Option<String>,
    /// The enrolment token tying the node to the operator's organisation.
    pub enrolment_token: Option<String>,
    /// Where the agent keeps its key (`node.key`).
    pub data_dir: Option<String>,
    /// The node's energy tag (e.g. `renewable`).
    pub energy_tag: Option<String>,
    /// Labels `key: value`.
    pub labels: Vec<(String, String)>,
}

/// A YAML double-quoted scalar (every value is quoted: no YAML type guessing, no injection
/// of keys through a value).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl AgentYaml {
    /// The file's text, commented.
    pub fn to_yaml(&self) -> String {
        let mut y = String::from(
            "# bitsage-agent configuration (bitsage-agent run --config agent.yaml).\n\
             # Flags and BITSAGE_* environment variables override these values.\n",
        );
        y.push_str("coordinators:\n");
        for c in &self.coordinators {
            let _ = writeln!(y, "  - {}", quote(c));
        }
        let _ = writeln!(y, "wallet: {}", quote(&self.wallet));
        if let Some(d) = &self.data_dir {
            let _ = writeln!(y, "data_dir: {}", quote(d));
        }
        if let Some(r) = &self.region {
            let _ = writeln!(y, "region: {}", quote(r));
        }
        if let Some(r) = &self.runtime {
            let _ = writeln!(y, "runtime: {}", quote(r));
        }
        if let Some(e) = &self.energy_tag {
            let _ = writeln!(y, "energy_tag: {}", quote(e));
        }
        if !self.labels.is_empty() {
            y.push_str("labels:\n");
            for (k, v) in &self.labels {
                let _ = writeln!(y, "  {}: {}", quote(k), quote(v));
            }
        }
        match &self.enrolment_token {
            Some(t) => {
                y.push_str("# Ties this node to your organisation; single use, keep it secret.\n");
                let _ = writeln!(y, "enrolment_token: {}", quote(t));
            }
            None => y.push_str("# enrolment_token: \"bse_…\"  (create one in the console)\n"),
        }
        y
    }
}

/// The launchd job label (the property list is installed as `network.bitsage.agent.plist`).
pub const LAUNCHD_LABEL: &str = "network.bitsage.agent";

/// How much longer than the shutdown grace the service manager waits before killing the
/// agent: time to hand in the proof and exit.
const STOP_TIMEOUT_MARGIN_SECS: u64 = 15;

/// Why a service definition cannot be written for these settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A path that cannot go into the definition as it is.
    #[error("the {what} path {path:?} {reason}")]
    Path {
        /// Which path (`binary`, `config`, `data directory`).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A user name that is not one.
    #[error(
        "{0:?} is not a user name (1 to 32 characters of A-Z a-z 0-9 _ . -, not starting \
         with - or .)"
    )]
    User(String),
}

/// What a service definition runs: `binary run --config config`, writing only in
/// `data_dir`, as `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The `bitsage-agent` executable (absolute).
    pub binary: PathBuf,
    /// The configuration file passed to `run --config` (absolute).
    pub config: PathBuf,
    /// The agent's data directory (absolute): the one place it may write; also where
    /// launchd writes its logs.
    pub data_dir: PathBuf,
    /// The user the agent runs as (default: the service manager's, usually root).
    pub user: Option<String>,
    /// The agent's shutdown grace, seconds (its `shutdown_grace_secs`); the service
    /// manager's stop timeout is 15 s longer.
    pub shutdown_grace_secs: u64,
}

impl ServiceSpec {
    /// The paths as text, checked.
    fn checked(&self) -> Result<[&str; 3], ServiceError> {
        if let Some(user) = &self.user {
            check_user(user)?;
        }
        Ok([
            checked_path("binary", &self.binary)?,
            checked_path("config", &self.config)?,
            checked_path("data directory", &self.data_dir)?,
        ])
    }

    fn stop_timeout_secs(&self) -> u64 {
        self.shutdown_grace_secs
            .saturating_add(STOP_TIMEOUT_MARGIN_SECS)
    }

    /// A systemd unit (`bitsage-agent.service`): restarted on failure, stopped with SIGTERM
    /// and given the shutdown grace to finish, writing only in the data directory.
    pub fn systemd_unit(&self) -> Result<String, ServiceError> {
        let [binary, config, data_dir] = self.checked()?;
        // systemd expands `$` in the arguments but not in the executable's path.
        let exec = format!(
            "{} run --config {}",
            systemd_quote(binary, false),
            systemd_quote(config, true)
        );
        let user = self
            .user
            .as_deref()
            .map(|u| format!("User={u}\n"))
            .unwrap_or_default();
        Ok(format!(
            "# bitsage-agent as a systemd service (`bitsage-agent service --systemd` writes it).\n\
             # Install: copy to /etc/systemd/system/bitsage-agent.service, then\n\
             #   systemctl daemon-reload && systemctl enable --now bitsage-agent\n\
             \n\
             [Unit]\n\
             Description=BitSage agent (verifiable GPU compute worker)\n\
             After=network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             {user}\
             ExecStart={exec}\n\
             Restart=on-failure\n\
             RestartSec=5\n\
             KillSignal=SIGTERM\n\
             TimeoutStopSec={stop}\n\
             Environment=RUST_LOG=info\n\
             Environment={data_env}\n\
             NoNewPrivileges=yes\n\
             ProtectSystem=strict\n\
             ReadWritePaths={rw}\n\
             PrivateTmp=yes\n\
             ProtectControlGroups=yes\n\
             ProtectKernelTunables=yes\n\
             RestrictSUIDSGID=yes\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            stop = self.stop_timeout_secs(),
            data_env = systemd_quote(&format!("BITSAGE_DATA_DIR={data_dir}"), false),
            rw = systemd_quote(data_dir, false),
        ))
    }

    /// A launchd property list (`network.bitsage.agent.plist`): started at load, restarted
    /// when it exits with an error, logs in the data directory.
    pub fn launchd_plist(&self) -> Result<String, ServiceError> {
        let [binary, config, data_dir] = self.checked()?;
        let args: String = [binary, "run", "--config", config]
            .iter()
            .map(|a| format!("\t\t<string>{}</string>\n", xml_escape(a)))
            .collect();
        let user = self
            .user
            .as_deref()
            .map(|u| {
                format!(
                    "\t<key>UserName</key>\n\t<string>{}</string>\n",
                    xml_escape(u)
                )
            })
            .unwrap_or_default();
        let data_dir = data_dir.trim_end_matches('/');
        let log = |name: &str| xml_escape(&format!("{data_dir}/{name}"));
        Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <!-- bitsage-agent as a launchd job. Install: copy to \
             /Library/LaunchDaemons/{LAUNCHD_LABEL}.plist, then: launchctl bootstrap system \
             /Library/LaunchDaemons/{LAUNCHD_LABEL}.plist -->\n\
             <plist version=\"1.0\">\n\
             <dict>\n\
             \t<key>Label</key>\n\
             \t<string>{LAUNCHD_LABEL}</string>\n\
             \t<key>ProgramArguments</key>\n\
             \t<array>\n\
             {args}\
             \t</array>\n\
             {user}\
             \t<key>EnvironmentVariables</key>\n\
             \t<dict>\n\
             \t\t<key>RUST_LOG</key>\n\
             \t\t<string>info</string>\n\
             \t\t<key>BITSAGE_DATA_DIR</key>\n\
             \t\t<string>{data}</string>\n\
             \t</dict>\n\
             \t<key>RunAtLoad</key>\n\
             \t<true/>\n\
             \t<key>KeepAlive</key>\n\
             \t<dict>\n\
             \t\t<key>SuccessfulExit</key>\n\
             \t\t<false/>\n\
             \t</dict>\n\
             \t<key>ThrottleInterval</key>\n\
             \t<integer>5</integer>\n\
             \t<key>ExitTimeOut</key>\n\
             \t<integer>{stop}</integer>\n\
             \t<key>StandardOutPath</key>\n\
             \t<string>{out}</string>\n\
             \t<key>StandardErrorPath</key>\n\
             \t<string>{err}</string>\n\
             </dict>\n\
             </plist>\n",
            data = xml_escape(data_dir),
            stop = self.stop_timeout_secs(),
            out = log("agent.out.log"),
            err = log("agent.err.log"),
        ))
    }
}

fn checked_path<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, ServiceError> {
    let err = |reason| ServiceError::Path {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let s = path.to_str().ok_or_else(|| err("is not UTF-8"))?;
    if !path.is_absolute() {
        return Err(err("is not absolute"));
    }
    if s.chars().any(char::is_control) {
        return Err(err("contains a control character"));
    }
    Ok(s)
}

fn check_user(user: &str) -> Result<(), ServiceError> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with(['-', '.'])
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::User(user.to_string()))
    }
}

/// One word of a systemd unit setting: `%` doubled (specifiers), `$` doubled when the
/// word's variables are expanded (the arguments of `ExecStart=`, not its executable), and
/// double-quoted with `\` and `"` escaped when it holds whitespace, quotes, backslashes or
/// `;`. Control characters are refused before.
fn systemd_quote(word: &str, expands_variables: bool) -> String {
    let mut escaped = String::with_capacity(word.len() + 2);
    let quote = word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    for c in word.chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '$' if expands_variables => escaped.push_str("$$"),
            '\\' | '"' if quote => {
                escaped.push('\\');
                escaped.push(c);
            }
            _ => escaped.push(c),
        }
    }
    if quote {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// `s` with XML's five special characters escaped.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_so_they_cannot_add_keys() {
        let y = AgentYaml {
            coordinators: vec!["http://a:8080".into()],
            wallet: "0x1\nregion: evil".into(),
            ..Default::default()
        };
        let text = y.to_yaml();
        assert!(text.contains("wallet: \"0x1\\nregion: evil\""), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("region:")));
    }

    fn spec(binary: &str, config: &str, data_dir: &str) -> ServiceSpec {
        ServiceSpec {
            binary: binary.into(),
            config: config.into(),
            data_dir: data_dir.into(),
            user: None,
            shutdown_grace_secs: 30,
        }
    }

    /// systemd's own splitting (`extract_first_word` with unquoting and C escapes), enough
    /// of it to read back what [`systemd_quote`] writes.
    fn systemd_split(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let Some(&first) = chars.peek() else {
                return words;
            };
            let mut word = String::new();
            if first == '"' {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.push(chars.next().expect("escape")),
                        _ => word.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
            }
            words.push(word.replace("%%", "%"));
        }
    }

    #[test]
    fn quoted_words_split_back_into_themselves() {
        let words = [
            "/usr/local/bin/bitsage-agent",
            "/opt/Bit Sage/agent",
            "/a \"quoted\" dir/x",
            "/back\\slash",
            "/50%/$HOME/x",
            "/it's",
            "",
        ];
        let line = words.map(|w| systemd_quote(w, false)).join(" ");
        assert_eq!(systemd_split(&line), words, "{line}");
        assert_eq!(systemd_quote("/plain/path", true), "/plain/path");
        // Where variables are expanded, `$$` is a literal `$`.
        assert_eq!(systemd_quote("/a b/$HOME", true), "\"/a b/$$HOME\"");
        assert_eq!(systemd_quote("/x/$y", true), "/x/$$y");
    }

    #[test]
    fn the_unit_quotes_its_paths_and_waits_past_the_grace() {
        let unit = spec("/opt/a b/agent", "/etc/x 100%.yaml", "/var/lib/b")
            .systemd_unit()
            .expect("unit");
        assert!(
            unit.contains("ExecStart=\"/opt/a b/agent\" run --config \"/etc/x 100%%.yaml\"\n"),
            "{unit}"
        );
        assert!(unit.contains("TimeoutStopSec=45\n"), "{unit}");
        assert!(unit.contains("ReadWritePaths=/var/lib/b\n"), "{unit}");
        assert!(!unit.contains("User="), "{unit}");
    }

    #[test]
    fn plist_values_are_escaped() {
        let p = spec("/a&b/agent", "/c<d>.yaml", "/logs/")
            .launchd_plist()
            .expect("plist");
        assert!(p.contains("<string>/a&amp;b/agent</string>"), "{p}");
        assert!(p.contains("<string>/c&lt;d&gt;.yaml</string>"), "{p}");
        assert!(p.contains("<string>/logs/agent.err.log</string>"), "{p}");
        assert!(!p.contains("UserName"), "{p}");
    }

    #[test]
    fn bad_paths_and_users_are_refused() {
        let ok = spec("/bin/a", "/etc/a.yaml", "/var/lib/a");
        assert!(ok.systemd_unit().is_ok());
        let mut relative = ok.clone();
        relative.config = "agent.yaml".into();
        assert!(matches!(
            relative.systemd_unit(),
            Err(ServiceError::Path { what: "config", .. })
        ));
        let mut newline = ok.clone();
        newline.data_dir = "/var/lib/a\nExecStartPre=/bin/evil".into();
        assert!(newline.systemd_unit().is_err());
        let mut user = ok;
        user.user = Some("root\nUser=x".into());
        assert!(matches!(user.launchd_plist(), Err(ServiceError::User(_))));
    }
}
