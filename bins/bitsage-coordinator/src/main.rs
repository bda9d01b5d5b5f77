//! `bitsage-coordinator`: the coordinator binary. Thin: argument parsing and dispatch.
//!
//! Today it opens a store and applies its migrations (`migrate`); the server and the `dev`
//! mode (coordinator + in-process agent) arrive with the coordinator work.

use std::path::PathBuf;
use std::process::ExitCode;

use bitsage_core::node::NodeFilter;
use bitsage_core::page::PageRequest;
use bitsage_core::JobStore;
use clap::{Parser, Subcommand};

/// The BitSage coordinator.
#[derive(Debug, Parser)]
#[command(name = "bitsage-coordinator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the store (creating it if needed), apply migrations and report what it holds.
    Migrate {
        /// SQLite data directory (the embedded default).
        #[arg(long, default_value = ".bitsage", conflicts_with = "database_url")]
        data_dir: PathBuf,
        /// PostgreSQL URL (`postgres://…`); overrides `--data-dir`.
        #[arg(long, env = "BITSAGE_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migrate {
            data_dir,
            database_url,
        } => migrate(data_dir, database_url).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn migrate(data_dir: PathBuf, database_url: Option<String>) -> anyhow::Result<()> {
    let store: Box<dyn JobStore> = match database_url {
        Some(url) => Box::new(bitsage_store::PgStore::connect(&url).await?),
        None => Box::new(bitsage_store::SqliteStore::open_dir(&data_dir).await?),
    };
    let nodes = store
        .list_nodes(&NodeFilter::default(), PageRequest::first(1)?)
        .await?;
    println!(
        "{} store ready (migrations applied): {} node(s) registered",
        store.backend(),
        nodes.total
    );
    Ok(())
}
