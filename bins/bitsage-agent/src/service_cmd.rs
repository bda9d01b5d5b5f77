//! `service` subcommand: prints or writes a systemd unit or launchd property list that runs
//! `bitsage-agent run --config <file>`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitsage_agent::config_file::DEFAULT_SHUTDOWN_GRACE_SECS;
use bitsage_agent::AgentFile;
use bitsage_http::onboarding::ServiceSpec;

/// Arguments of `bitsage-agent service`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["systemd", "launchd"])))]
pub(crate) struct ServiceArgs {
    /// A systemd unit (Linux).
    #[arg(long)]
    systemd: bool,
    /// A launchd property list (macOS).
    #[arg(long)]
    launchd: bool,
    /// The configuration file the service runs with (made absolute; read now for the data
    /// directory and the shutdown grace).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The `bitsage-agent` executable the service starts (default: this one).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// The user the agent runs as (default: the service manager's, usually root).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The directory the agent may write to (default: the file's `data_dir`, else its
    /// `key_file`'s directory).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Write the definition to this file instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite `--out` if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

/// Runs `service`.
pub(crate) fn service(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    let config = std::path::absolute(&args.config)
        .with_context(|| format!("--config {}", args.config.display()))?;
    let file = AgentFile::load(&config)?;
    let binary = match &args.binary {
        Some(b) => std::path::absolute(b).with_context(|| format!("--binary {}", b.display()))?,
        None => std::env::current_exe().context("finding this executable (pass --binary)")?,
    };
    let data_dir = match args.data_dir.as_ref().or(file.data_dir.as_ref()) {
        Some(d) => std::path::absolute(d).with_context(|| format!("--data-dir {}", d.display()))?,
        None => file
            .key_file
            .as_deref()
            .and_then(|k| k.parent())
            .map(PathBuf::from)
            .with_context(|| {
                format!(
                    "the service needs a data directory it may write to: set `data_dir:` in {} \
                     or pass --data-dir",
                    config.display()
                )
            })?,
    };
    let spec = ServiceSpec {
        binary,
        config,
        data_dir: data_dir.clone(),
        user: args.user.clone(),
        shutdown_grace_secs: file
            .shutdown_grace_secs
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
    };
    let text = if args.systemd {
        spec.systemd_unit()?
    } else {
        spec.launchd_plist()?
    };
    match &args.out {
        None => print!("{text}"),
        Some(out) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true);
            if args.force {
                opts.create(true).truncate(true);
            } else {
                opts.create_new(true);
            }
            let mut f = opts.open(out).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "{} already exists (pass --force to overwrite it)",
                        out.display()
                    )
                } else {
                    anyhow::Error::new(e).context(format!("writing {}", out.display()))
                }
            })?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}", out.display());
        }
    }
    if !data_dir.is_dir() {
        let owner = args
            .user
            .as_deref()
            .map(|u| format!(" -o {u}"))
            .unwrap_or_default();
        eprintln!(
            "note: the data directory {} does not exist yet; create it before starting the \
             service: install -d -m 0700{owner} {}",
            data_dir.display(),
            data_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
