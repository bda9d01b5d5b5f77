//! [`SqliteStore`]: the embedded default — one file in a data directory.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a commit is fsynced before the call
//! returns. Concurrency: SQLite has one writer at a time, so writes go through a one-connection
//! pool (no `SQLITE_BUSY` upgrades, leases are trivially exclusive) and reads through a separate
//! pool that sees every committed write. A third connection checkpoints the WAL into the
//! database file every second, beside the writer, so commits do not wait for checkpoint I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::chain::{ChainEvent, IndexerCursor};
use bitsage_core::crypto::Hash32;
use bitsage_core::event::{self, NewEvent, StoredEvent};
use bitsage_core::gpu::{GpuSample, ReportedCollector};
use bitsage_core::job::{
    ExpirySweep, JobFilter, JobRecord, JobResult, Lease, LeaseInfo, LeaseRef, NewJob,
    VerifiedCompletion,
};
use bitsage_core::ledger::{daily_totals, DailyEarnings, EarningEntry, EarningsTotal};
use bitsage_core::node::{Heartbeat, NewNode, NodeFilter, NodeRecord, StatusChange};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::receipt::{Receipt, ReceiptFilter};
use bitsage_core::time::{from_micros, to_micros};
use bitsage_core::timing::JobTiming;
use bitsage_core::{ChainEventStore, JobQueue, NodeStore, ReceiptLedger, TelemetryStore};
use bitsage_core::{
    EntryId, Error, EventLog, Inserted, JobId, JobStatus, JobStore, LeaseId, NodeId, NodeStatus,
    ReceiptId, ReplayLog, Result, TimeWindow, Timestamp, TokenAmount, Transition,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::common::{
    apply_payer_effect, check_lease, complete, epoch_state, expiry_error, job_filter_sql,
    lease_until, new_job_record, new_node_record, payer_effect, reported_collector, settle_failure,
    settle_payer,
};
use crate::events::LocalEventBus;
use crate::group_commit::GroupCommit;
use bitsage_core::funding::PayerAccount;
use bitsage_core::settlement::{Epoch, SettlementItem, SettlementLedger, SlashItem};
use bitsage_core::wallet::FeltHex;
use bitsage_core::PayerLedger;

pub(crate) const BACKEND: &str = "sqlite";
/// The database file's name inside the data directory.
pub(crate) const DB_FILE: &str = "bitsage.db";

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    crate::common::unavailable_or(BACKEND, e)
}

pub(crate) fn json_err(e: serde_json::Error) -> Error {
    Error::backend(BACKEND, e)
}

/// Fills `earnings_totals` for a ledger that predates it (migration 0005), in one
/// transaction: runs only when the ledger has entries and the totals table has none, which
/// after that first run never happens again (every credit updates its node's row).
async fn backfill_earnings_totals(writer: &sqlx::SqlitePool) -> Result<()> {
    let mut tx = writer.begin().await.map_err(db_err)?;
    let result: Result<()> = async {
        let (entries, totals): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM earnings), (SELECT COUNT(*) FROM earnings_totals)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if entries == 0 || totals > 0 {
            return Ok(());
        }
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT node_id, gross, fee, net FROM earnings")
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        let mut per_node: BTreeMap<String, EarningsTotal> = BTreeMap::new();
        let mut overflowed = Vec::new();
        for (node, gross, fee, net) in rows {
            let total = per_node.entry(node.clone()).or_default();
            match add_amounts(total, &gross, &fee, &net) {
                Ok(()) => {}
                Err(Error::Overflow(_)) => overflowed.push(node),
                Err(e) => return Err(e),
            }
        }
        for (node, total) in &per_node {
            write_total(&mut tx, node, total).await?;
        }
        for node in &overflowed {
            mark_total_overflowed(&mut tx, node).await?;
        }
        tracing::info!(
            nodes = per_node.len(),
            entries,
            "summed the existing ledger into earnings_totals"
        );
        Ok(())
    }
    .await;
    finish(tx, result).await
}

/// Adds one entry's decimal amounts to `total`, exactly.
fn add_amounts(total: &mut EarningsTotal, gross: &str, fee: &str, net: &str) -> Result<()> {
    total.add_amounts(amount(gross)?, amount(fee)?, amount(net)?)
}

/// A node's running total as stored (zero when it has none), through `ex` (the credit's
/// transaction, or the reader pool).
async fn read_total<'e, E>(ex: E, node: &str) -> Result<EarningsTotal>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let row: Option<(i64, String, String, String)> =
        sqlx::query_as("SELECT entries, gross, fee, net FROM earnings_totals WHERE node_id = ?")
            .bind(node)
            .fetch_optional(ex)
            .await
            .map_err(db_err)?;
    total_of(row)
}

/// `entries` of a running total whose sum went beyond u256.
const TOTAL_OVERFLOWED: i64 = -1;

async fn mark_total_overflowed(tx: &mut Transaction<'_, Sqlite>, node: &str) -> Result<()> {
    sqlx::query("UPDATE earnings_totals SET entries = ? WHERE node_id = ?")
        .bind(TOTAL_OVERFLOWED)
        .bind(node)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn total_of(row: Option<(i64, String, String, String)>) -> Result<EarningsTotal> {
    let Some((entries, gross, fee, net)) = row else {
        return Ok(EarningsTotal::default());
    };
    if entries == TOTAL_OVERFLOWED {
        return Err(Error::Overflow("token amount addition"));
    }
    Ok(EarningsTotal {
        entries: u64::try_from(entries)
            .map_err(|_| Error::backend(BACKEND, "negative entry count"))?,
        gross: amount(&gross)?,
        fee: amount(&fee)?,
        net: amount(&net)?,
    })
}

async fn write_total(
    tx: &mut Transaction<'_, Sqlite>,
    node: &str,
    total: &EarningsTotal,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO earnings_totals (node_id, entries, gross, fee, net) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (node_id) DO UPDATE SET entries = excluded.entries, \
         gross = excluded.gross, fee = excluded.fee, net = excluded.net",
    )
    .bind(node)
    .bind(to_i64(total.entries, "earnings entry count")?)
    .bind(total.gross.to_string())
    .bind(total.fee.to_string())
    .bind(total.net.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts `samples` of `node` inside `tx` (the caller checked the node exists).
async fn insert_samples(
    tx: &mut Transaction<'_, Sqlite>,
    node: &NodeId,
    samples: &[GpuSample],
) -> Result<()> {
    for s in samples {
        sqlx::query(
            "INSERT INTO gpu_samples (node_id, device_uuid, sampled_at, sample) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(node.as_str())
        .bind(&s.uuid)
        .bind(to_micros(s.at))
        .bind(serde_json::to_string(s).map_err(json_err)?)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) fn time_of(us: i64) -> Result<Timestamp> {
    from_micros(us).ok_or_else(|| Error::backend(BACKEND, format!("stored time {us} out of range")))
}

pub(crate) fn to_i64(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, "exceeds 2^63 - 1"))
}

fn amount(s: &str) -> Result<TokenAmount> {
    TokenAmount::from_base_units(s).map_err(|e| Error::backend(BACKEND, e.to_string()))
}

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    path: PathBuf,
    bus: LocalEventBus,
    /// Heartbeats wait here for a shared commit ([`crate::sqlite_heartbeats`]).
    heartbeats: GroupCommit<Heartbeat, NodeStatus>,
    /// Checkpoints the WAL beside the writer ([`spawn_checkpointer`]); stops when the last
    /// clone of the store is dropped.
    checkpointer: Arc<Checkpointer>,
}

/// The background checkpointer's connection and its stop signal.
#[derive(Debug)]
struct Checkpointer {
    pool: SqlitePool,
    _stop: tokio::sync::watch::Sender<()>,
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`] on its own connection
/// (`PRAGMA wal_checkpoint(PASSIVE)`: it takes no lock a writer or reader waits for), so the
/// writer's commits never pay for a checkpoint's writes and fsync; the writer's own
/// auto-checkpoint ([`WAL_CHECKPOINT_PAGES`]) only bounds the WAL should this fall behind.
/// Ends when `stop` is dropped.
fn spawn_checkpointer(pool: SqlitePool, mut stop: tokio::sync::watch::Receiver<()>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %e, "SQLite WAL checkpoint failed (the writer's auto-checkpoint still bounds the WAL)");
            }
        }
        pool.close().await;
    });
}

/// Most heartbeats in one group commit.
const HEARTBEAT_BATCH: usize = 2_048;
/// Most heartbeats waiting for a commit before writers wait for room.
const HEARTBEAT_QUEUE: usize = 65_536;
/// The writer connection's page cache, KiB (SQLite's default is 2 MiB): a heartbeat batch
/// touches a few pages per node (its history, its minute and its row), so the default cache
/// re-reads them from the file on every commit once the fleet has more than a few hundred
/// nodes.
const WRITER_CACHE_KIB: u32 = 64 * 1024;
/// WAL frames after which a commit of the writer checkpoints the log itself — a bound only:
/// the checkpointer ([`spawn_checkpointer`]) normally copies the log first, off the writer.
/// (SQLite's default, 1,000 pages / 4 MiB, is less than one busy heartbeat batch writes, so
/// nearly every commit also copied its pages into the database file and waited for that
/// fsync.) The WAL file stays below about this many pages (256 MiB).
const WAL_CHECKPOINT_PAGES: u32 = 65_536;
/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl SqliteStore {
    /// Opens (creating if needed) `bitsage.db` in `data_dir` and applies migrations.
    pub async fn open_dir(data_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::backend(
                BACKEND,
                format!("cannot create data directory {}: {e}", dir.display()),
            )
        })?;
        Self::open(dir.join(DB_FILE)).await
    }

    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                opts.clone()
                    .pragma("cache_size", format!("-{}", WRITER_CACHE_KIB))
                    .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string()),
            )
            .await
            .map_err(db_err)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        backfill_earnings_totals(&writer).await?;
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(db_err)?;
        let (stop, stopped) = tokio::sync::watch::channel(());
        spawn_checkpointer(checkpoints.clone(), stopped);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(db_err)?;
        let batch_writer = writer.clone();
        // One batch at a time: SQLite has one writer.
        let heartbeats =
            GroupCommit::spawn(BACKEND, HEARTBEAT_BATCH, HEARTBEAT_QUEUE, 1, move |beats| {
                let writer = batch_writer.clone();
                async move { crate::sqlite_heartbeats::append(&writer, beats).await }
            });
        Ok(Self {
            writer,
            reader,
            path,
            bus: LocalEventBus::new(),
            heartbeats,
            checkpointer: Arc::new(Checkpointer {
                pool: checkpoints,
                _stop: stop,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes both pools, waiting for in-flight work.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        self.checkpointer.pool.close().await;
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'_, Sqlite>> {
        self.writer.begin().await.map_err(db_err)
    }

    /// The bus that wakes readers after this store committed events (one writer process).
    pub fn event_bus(&self) -> LocalEventBus {
        self.bus.clone()
    }

    /// Wakes event readers after a successful write (spurious wake-ups are allowed).
    fn notified<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_ok() {
            self.bus.notify();
        }
        r
    }
}

/// Appends events to the outbox inside `tx`.
async fn append_events(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[NewEvent],
    at: Timestamp,
) -> Result<()> {
    for e in events {
        sqlx::query("INSERT INTO events (topic, kind, at, data) VALUES (?, ?, ?, ?)")
            .bind(e.topic.as_str())
            .bind(&e.kind)
            .bind(to_micros(at))
            .bind(serde_json::to_string(&e.data).map_err(json_err)?)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

fn stored_event_from_row(row: &SqliteRow) -> Result<StoredEvent> {
    let id: i64 = row.try_get("id").map_err(db_err)?;
    let topic: String = row.try_get("topic").map_err(db_err)?;
    let data: String = row.try_get("data").map_err(db_err)?;
    Ok(StoredEvent {
        id: u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative event id"))?,
        topic: topic.parse()?,
        kind: row.try_get("kind").map_err(db_err)?,
        at: time_of(row.try_get("at").map_err(db_err)?)?,
        data: serde_json::from_str(&data).map_err(json_err)?,
    })
}

/// Stores a receipt inside `tx` (idempotent by id).
async fn insert_receipt_tx(
    tx: &mut Transaction<'_, Sqlite>,
    receipt: &Receipt,
) -> Result<Inserted> {
    let existing: Option<String> = sqlx::query_scalar("SELECT receipt FROM receipts WHERE id = ?")
        .bind(receipt.body.id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if let Some(existing) = existing {
        let existing: Receipt = serde_json::from_str(&existing).map_err(json_err)?;
        return if existing == *receipt {
            Ok(Inserted::AlreadyPresent)
        } else {
            Err(Error::AlreadyExists {
                what: "receipt",
                id: receipt.body.id.to_string(),
            })
        };
    }
    sqlx::query(
        "INSERT INTO receipts (id, job_id, node_id, kind, completed_at, receipt) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(receipt.body.id.to_string())
    .bind(receipt.body.job_id.to_string())
    .bind(receipt.body.node_id.as_str())
    .bind(&receipt.body.kind)
    .bind(to_micros(receipt.body.completed_at))
    .bind(serde_json::to_string(receipt).map_err(json_err)?)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    append_events(
        tx,
        &[event::receipt_issued(receipt)],
        bitsage_core::time::now(),
    )
    .await?;
    Ok(Inserted::New)
}

/// Credits a ledger entry inside `tx` (idempotent by id), keeping the node's running total.
async fn credit_tx(tx: &mut Transaction<'_, Sqlite>, entry: &EarningEntry) -> Result<Inserted> {
    let existing = sqlx::query("SELECT * FROM earnings WHERE id = ?")
        .bind(entry.id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if let Some(row) = existing {
        return if entry_from_row(&row)? == *entry {
            Ok(Inserted::AlreadyPresent)
        } else {
            Err(Error::AlreadyExists {
                what: "ledger entry",
                id: entry.id.to_string(),
            })
        };
    }
    sqlx::query(
        "INSERT INTO earnings (id, node_id, job_id, gross, fee, net, credited_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.id.to_string())
    .bind(entry.node_id.as_str())
    .bind(entry.job_id.to_string())
    .bind(entry.gross.to_string())
    .bind(entry.fee.to_string())
    .bind(entry.net.to_string())
    .bind(to_micros(entry.credited_at))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    // The node's running total, in the same transaction. A sum beyond u256 is kept as
    // "overflowed" (the entry itself is valid and stored, as in every backend); reading that
    // total is then `Overflow`, never a wrapped number.
    let node = entry.node_id.as_str();
    match read_total(&mut **tx, node).await {
        Err(Error::Overflow(_)) => {}
        Err(e) => return Err(e),
        Ok(mut total) => match total.add(entry) {
            Ok(()) => write_total(tx, node, &total).await?,
            Err(Error::Overflow(_)) => mark_total_overflowed(tx, node).await?,
            Err(e) => return Err(e),
        },
    }
    Ok(Inserted::New)
}

fn node_from_row(row: &SqliteRow) -> Result<NodeRecord> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    let gi = |c: &str| row.try_get::<i64, _>(c).map_err(db_err);
    Ok(NodeRecord {
        id: NodeId::parse(&g("id")?)?,
        public_key: bitsage_core::crypto::PublicKey::from_hex(&g("public_key")?)?,
        wallet: bitsage_core::WalletAddress::parse(&g("wallet")?)?,
        hardware: serde_json::from_str(&g("hardware")?).map_err(json_err)?,
        agent_version: g("agent_version")?,
        status: NodeStatus::parse(&g("status")?)?,
        status_reason: g("status_reason")?,
        status_changed_at: time_of(gi("status_changed_at")?)?,
        registered_at: time_of(gi("registered_at")?)?,
        wallet_proven_at: row
            .try_get::<Option<i64>, _>("wallet_proven_at")
            .map_err(db_err)?
            .map(time_of)
            .transpose()?,
        profile: bitsage_core::node::NodeProfile {
            region: row.try_get("region").map_err(db_err)?,
            runtime: bitsage_core::node::Runtime::parse(&g("runtime")?)?,
            labels: serde_json::from_str(&g("labels")?).map_err(json_err)?,
            energy_tag: row.try_get("energy_tag").map_err(db_err)?,
        },
        reputation: row
            .try_get::<Option<String>, _>("reputation")
            .map_err(db_err)?
            .map(|j| serde_json::from_str(&j).map_err(json_err))
            .transpose()?,
        drain: row
            .try_get::<Option<String>, _>("drain")
            .map_err(db_err)?
            .map(|j| serde_json::from_str(&j).map_err(json_err))
            .transpose()?,
    })
}

const JOB_COLUMNS: &str = "id, spec, payment, status, attempts, max_attempts, lease_id, \
     lease_node, leased_at, lease_expires_at, result, completed_by, last_error, submitted_at, \
     updated_at, payer";

fn job_from_row(row: &SqliteRow) -> Result<JobRecord> {
    let id = JobId::parse(&row.try_get::<String, _>("id").map_err(db_err)?)?;
    let kind = serde_json::from_str(&row.try_get::<String, _>("spec").map_err(db_err)?)
        .map_err(json_err)?;
    let lease = match row
        .try_get::<Option<String>, _>("lease_id")
        .map_err(db_err)?
    {
        Some(lease_id) => Some(LeaseInfo {
            lease_id: LeaseId::parse(&lease_id)?,
            node_id: NodeId::parse(
                &row.try_get::<Option<String>, _>("lease_node")
                    .map_err(db_err)?
                    .unwrap_or_default(),
            )?,
            leased_at: time_of(row.try_get::<i64, _>("leased_at").map_err(db_err)?)?,
            expires_at: time_of(row.try_get::<i64, _>("lease_expires_at").map_err(db_err)?)?,
        }),
        None => None,
    };
    let result = row
        .try_get::<Option<String>, _>("result")
        .map_err(db_err)?
        .map(|r| serde_json::from_str::<JobResult>(&r))
        .transpose()
        .map_err(json_err)?;
    let completed_by = row
        .try_get::<Option<String>, _>("completed_by")
        .map_err(db_err)?
        .map(|n| NodeId::parse(&n))
        .transpose()?;
    let count = |c: &str| -> Result<u32> {
        let v: i64 = row.try_get(c).map_err(db_err)?;
        u32::try_from(v).map_err(|_| Error::backend(BACKEND, format!("{c} out of range")))
    };
    Ok(JobRecord {
        spec: bitsage_core::JobSpec { id, kind },
        payment: amount(&row.try_get::<String, _>("payment").map_err(db_err)?)?,
        status: JobStatus::parse(&row.try_get::<String, _>("status").map_err(db_err)?)?,
        attempts: count("attempts")?,
        max_attempts: count("max_attempts")?,
        lease,
        result,
        completed_by,
        last_error: row.try_get("last_error").map_err(db_err)?,
        submitted_at: time_of(row.try_get("submitted_at").map_err(db_err)?)?,
        updated_at: time_of(row.try_get("updated_at").map_err(db_err)?)?,
        payer: row
            .try_get::<Option<String>, _>("payer")
            .map_err(db_err)?
            .map(|p| bitsage_core::WalletAddress::parse(&p))
            .transpose()?,
    })
}

fn payer_from_row(row: &SqliteRow) -> Result<PayerAccount> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    Ok(PayerAccount {
        account: bitsage_core::WalletAddress::parse(&g("account")?)?,
        public_key: row
            .try_get::<Option<String>, _>("public_key")
            .map_err(db_err)?
            .map(|k| FeltHex::parse(&k))
            .transpose()?,
        credit: amount(&g("credit")?)?,
        reserved: amount(&g("reserved")?)?,
        unsettled: amount(&g("unsettled")?)?,
        spent: amount(&g("spent")?)?,
        updated_at: time_of(row.try_get("updated_at").map_err(db_err)?)?,
    })
}

/// A payer's books inside a write transaction (an empty account when it has none yet; the
/// single writer connection serialises writers).
async fn load_payer(
    tx: &mut Transaction<'_, Sqlite>,
    account: &bitsage_core::WalletAddress,
    at: Timestamp,
) -> Result<PayerAccount> {
    let row = sqlx::query("SELECT * FROM payers WHERE account = ?")
        .bind(account.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    match row {
        Some(r) => payer_from_row(&r),
        None => Ok(PayerAccount::empty(*account, at)),
    }
}

async fn save_payer(tx: &mut Transaction<'_, Sqlite>, p: &PayerAccount) -> Result<()> {
    sqlx::query(
        "INSERT INTO payers (account, public_key, credit, reserved, unsettled, spent, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET \
         public_key = excluded.public_key, credit = excluded.credit, reserved = excluded.reserved, \
         unsettled = excluded.unsettled, spent = excluded.spent, updated_at = excluded.updated_at",
    )
    .bind(p.account.to_string())
    .bind(p.public_key.as_ref().map(|k| k.to_string()))
    .bind(p.credit.to_string())
    .bind(p.reserved.to_string())
    .bind(p.unsettled.to_string())
    .bind(p.spent.to_string())
    .bind(to_micros(p.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn load_job(tx: &mut Transaction<'_, Sqlite>, id: &JobId) -> Result<JobRecord> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found("job", id))?;
    job_from_row(&row)
}

/// Writes back the mutable part of a job after a state change.
/// Writes back the mutable part of a job after a state change (moved from `before`), and
/// what the move does to its payer's books.
async fn save_job(
    tx: &mut Transaction<'_, Sqlite>,
    before: JobStatus,
    job: &JobRecord,
) -> Result<()> {
    if let (Some(effect), Some(payer)) = (payer_effect(before, job), job.payer) {
        let mut account = load_payer(tx, &payer, job.updated_at).await?;
        apply_payer_effect(&mut account, effect, job, job.updated_at)?;
        save_payer(tx, &account).await?;
    }
    let result = job
        .result
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)?;
    sqlx::query(
        "UPDATE jobs SET status = ?, attempts = ?, lease_id = ?, lease_node = ?, leased_at = ?, \
         lease_expires_at = ?, result = ?, completed_by = ?, last_error = ?, updated_at = ? \
         WHERE id = ?",
    )
    .bind(job.status.as_str())
    .bind(i64::from(job.attempts))
    .bind(job.lease.as_ref().map(|l| l.lease_id.to_string()))
    .bind(job.lease.as_ref().map(|l| l.node_id.to_string()))
    .bind(job.lease.as_ref().map(|l| to_micros(l.leased_at)))
    .bind(job.lease.as_ref().map(|l| to_micros(l.expires_at)))
    .bind(result)
    .bind(job.completed_by.as_ref().map(|n| n.to_string()))
    .bind(job.last_error.as_deref())
    .bind(to_micros(job.updated_at))
    .bind(job.spec.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn sample_from_row(row: &SqliteRow) -> Result<GpuSample> {
    serde_json::from_str(&row.try_get::<String, _>("sample").map_err(db_err)?).map_err(json_err)
}

fn receipt_from_row(row: &SqliteRow) -> Result<Receipt> {
    serde_json::from_str(&row.try_get::<String, _>("receipt").map_err(db_err)?).map_err(json_err)
}

fn entry_from_row(row: &SqliteRow) -> Result<EarningEntry> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    Ok(EarningEntry {
        id: EntryId::parse(&g("id")?)?,
        node_id: NodeId::parse(&g("node_id")?)?,
        job_id: JobId::parse(&g("job_id")?)?,
        gross: amount(&g("gross")?)?,
        fee: amount(&g("fee")?)?,
        net: amount(&g("net")?)?,
        credited_at: time_of(row.try_get("credited_at").map_err(db_err)?)?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<ChainEvent> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    let block: i64 = row.try_get("block_number").map_err(db_err)?;
    let index: i64 = row.try_get("event_index").map_err(db_err)?;
    Ok(ChainEvent {
        block_number: u64::try_from(block).map_err(|_| Error::backend(BACKEND, "bad block"))?,
        block_hash: g("block_hash")?,
        tx_hash: g("tx_hash")?,
        event_index: u32::try_from(index).map_err(|_| Error::backend(BACKEND, "bad index"))?,
        contract: g("contract")?,
        keys: serde_json::from_str(&g("keys")?).map_err(json_err)?,
        data: serde_json::from_str(&g("data")?).map_err(json_err)?,
    })
}

async fn node_exists(tx: &mut Transaction<'_, Sqlite>, id: &NodeId) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM nodes WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .is_some())
}

/// Ends a transaction: commits on success, rolls back on error. A dropped sqlx transaction
/// only rolls back when its connection is next used, keeping its row locks until then, so
/// every transaction here ends explicitly.
pub(crate) async fn finish<T>(tx: Transaction<'_, Sqlite>, result: Result<T>) -> Result<T> {
    match result {
        Ok(v) => {
            tx.commit().await.map_err(db_err)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    #[tracing::instrument(name = "store.events_after", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?")
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(stored_event_from_row).collect()
    }

    #[tracing::instrument(name = "store.last_event_id", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn last_event_id(&self) -> Result<u64> {
        // AUTOINCREMENT keeps the largest id ever used in sqlite_sequence, also after purges.
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }

    #[tracing::instrument(name = "store.purge_events", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn purge_events(&self, before: Timestamp) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM events WHERE at < ? AND id < (SELECT MAX(id) FROM events)")
                .bind(to_micros(before))
                .execute(&self.writer)
                .await
                .map_err(db_err)?
                .rows_affected(),
        )
    }

    #[tracing::instrument(name = "store.append_event", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn append_event(&self, event: &NewEvent, at: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let result: Result<i64> = async {
            append_events(&mut tx, std::slice::from_ref(event), at).await?;
            sqlx::query_scalar("SELECT last_insert_rowid()")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)
        }
        .await;
        let id = self.notified(finish(tx, result).await)?;
        u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative event id"))
    }
}

#[async_trait]
impl ReplayLog for SqliteStore {
    #[tracing::instrument(name = "store.remember_message", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn remember_message(&self, digest: &Hash32, keep_until: Timestamp) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO replay_log (digest, keep_until) VALUES (?, ?) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&digest.0[..])
        .bind(to_micros(keep_until))
        .execute(&self.writer)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(inserted == 1)
    }

    #[tracing::instrument(name = "store.purge_messages", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn purge_messages(&self, before: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM replay_log WHERE keep_until < ?")
            .bind(to_micros(before))
            .execute(&self.writer)
            .await
            .map_err(db_err)?
            .rows_affected())
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    #[tracing::instrument(name = "store.settle_completion", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn settle_completion(&self, c: &VerifiedCompletion, now: Timestamp) -> Result<JobRecord> {
        c.check()?;
        c.entry.validate()?;
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            let mut job = load_job(&mut tx, &c.lease.job_id).await?;
            let before = job.status;
            if !c.already_applied_to(&job) {
                let region: Option<String> =
                    sqlx::query_scalar("SELECT region FROM nodes WHERE id = ?")
                        .bind(c.lease.node_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?
                        .flatten();
                let timing = JobTiming::of(&job, now, c.verify_time, region);
                complete(&mut job, &c.lease, &c.result, now)?;
                save_job(&mut tx, before, &job).await?;
                append_events(&mut tx, &[event::job_completed(&job)], now).await?;
                if let Some(t) = timing {
                    insert_timing(&mut tx, &t).await?;
                }
                sqlx::query(
                    "INSERT INTO node_facts (node_id, fact, at, detail) VALUES (?, ?, ?, ?)",
                )
                .bind(c.lease.node_id.as_str())
                .bind(bitsage_core::reputation::NodeFact::LeaseCompleted.as_str())
                .bind(to_micros(now))
                .bind(format!("job {} verified", c.lease.job_id))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            insert_receipt_tx(&mut tx, &c.receipt).await?;
            credit_tx(&mut tx, &c.entry).await?;
            Ok(job)
        }
        .await;
        self.notified(finish(tx, result).await)
    }
}

/// Stores a completed job's timing (once per job).
async fn insert_timing(tx: &mut Transaction<'_, Sqlite>, t: &JobTiming) -> Result<()> {
    let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO job_timings (job_id, node_id, kind, region, completed_at, queue_wait_us, \
         run_us, verify_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(t.job_id.to_string())
    .bind(t.node_id.as_str())
    .bind(&t.kind)
    .bind(t.region.as_deref())
    .bind(to_micros(t.completed_at))
    .bind(us(t.queue_wait))
    .bind(us(t.run))
    .bind(us(t.verify))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// An epoch with its items and slashes, read inside `tx`.
async fn load_epoch(tx: &mut Transaction<'_, Sqlite>, id: u64) -> Result<Option<Epoch>> {
    let id_i = to_i64(id, "epoch id")?;
    let Some(row) = sqlx::query("SELECT * FROM epochs WHERE id = ?")
        .bind(id_i)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
    else {
        return Ok(None);
    };
    let state = epoch_state(
        &row.try_get::<String, _>("state").map_err(db_err)?,
        row.try_get("tx_hash").map_err(db_err)?,
        row.try_get("block").map_err(db_err)?,
        row.try_get("reason").map_err(db_err)?,
    )?;
    let rows = sqlx::query(
        "SELECT r.receipt AS receipt, j.payer AS payer, n.wallet AS wallet FROM receipts r \
         LEFT JOIN jobs j ON j.id = r.job_id LEFT JOIN nodes n ON n.id = r.node_id \
         WHERE r.epoch_id = ? ORDER BY r.completed_at, r.id",
    )
    .bind(id_i)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let items = rows
        .iter()
        .map(|r| {
            let receipt: Receipt =
                serde_json::from_str(&r.try_get::<String, _>("receipt").map_err(db_err)?)
                    .map_err(json_err)?;
            let payer = r
                .try_get::<Option<String>, _>("payer")
                .map_err(db_err)?
                .map(|p| bitsage_core::WalletAddress::parse(&p))
                .transpose()?;
            let wallet = r
                .try_get::<Option<String>, _>("wallet")
                .map_err(db_err)?
                .ok_or_else(|| Error::not_found("node", &receipt.body.node_id))?;
            Ok(SettlementItem {
                payer,
                worker: bitsage_core::WalletAddress::parse(&wallet)?,
                receipt,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let slash_rows = sqlx::query("SELECT * FROM slashes WHERE epoch_id = ? ORDER BY seq")
        .bind(id_i)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    let slashes = slash_rows
        .iter()
        .map(|r| {
            let g = |c: &str| r.try_get::<String, _>(c).map_err(db_err);
            Ok(SlashItem {
                node_id: NodeId::parse(&g("node_id")?)?,
                worker: bitsage_core::WalletAddress::parse(&g("worker")?)?,
                job_id: JobId::parse(&g("job_id")?)?,
                reason: g("reason")?,
                at: time_of(r.try_get("at").map_err(db_err)?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Epoch {
        id,
        state,
        items,
        slashes,
        created_at: time_of(row.try_get("created_at").map_err(db_err)?)?,
        updated_at: time_of(row.try_get("updated_at").map_err(db_err)?)?,
    }))
}

#[async_trait]
impl SettlementLedger for SqliteStore {
    #[tracing::instrument(name = "store.next_epoch", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn next_epoch(&self, max_items: u32, now: Timestamp) -> Result<Option<Epoch>> {
        let mut tx = self.begin().await?;
        let result: Result<Option<Epoch>> = async {
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM epochs WHERE state <> 'accepted' ORDER BY id LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(id) = open {
                return load_epoch(&mut tx, id as u64).await;
            }
            let waiting: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM receipts WHERE epoch_id IS NULL ORDER BY completed_at, id LIMIT ?",
            )
            .bind(i64::from(max_items))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let slashes: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM slashes WHERE epoch_id IS NULL")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if waiting.is_empty() && slashes == 0 {
                return Ok(None);
            }
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM epochs")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO epochs (id, state, created_at, updated_at) VALUES (?, 'pending', ?, ?)",
            )
            .bind(id)
            .bind(to_micros(now))
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            for r in &waiting {
                sqlx::query("UPDATE receipts SET epoch_id = ? WHERE id = ?")
                    .bind(id)
                    .bind(r)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            sqlx::query("UPDATE slashes SET epoch_id = ? WHERE epoch_id IS NULL")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            load_epoch(&mut tx, id as u64).await
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.unfinished_epoch", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn unfinished_epoch(&self) -> Result<Option<Epoch>> {
        let mut tx = self.begin().await?;
        let result: Result<Option<Epoch>> = async {
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM epochs WHERE state <> 'accepted' ORDER BY id LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            match open {
                Some(id) => load_epoch(&mut tx, id as u64).await,
                None => Ok(None),
            }
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.epoch_sent", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn epoch_sent(&self, id: u64, tx_hash: &str, now: Timestamp) -> Result<()> {
        self.set_epoch_state(id, "sent", Some(tx_hash), None, None, now)
            .await
    }

    #[tracing::instrument(name = "store.epoch_accepted", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn epoch_accepted(
        &self,
        id: u64,
        tx_hash: &str,
        block: u64,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let Some(epoch) = load_epoch(&mut tx, id).await? else {
                return Err(Error::not_found("epoch", id));
            };
            if matches!(
                epoch.state,
                bitsage_core::settlement::EpochState::Accepted { .. }
            ) {
                return Ok(());
            }
            for item in &epoch.items {
                if let Some(payer) = item.payer {
                    let mut account = load_payer(&mut tx, &payer, now).await?;
                    settle_payer(&mut account, item.receipt.body.payment, now)?;
                    save_payer(&mut tx, &account).await?;
                }
            }
            sqlx::query(
                "UPDATE epochs SET state = 'accepted', tx_hash = ?, block = ?, reason = NULL, \
                 updated_at = ? WHERE id = ?",
            )
            .bind(tx_hash)
            .bind(to_i64(block, "block")?)
            .bind(to_micros(now))
            .bind(to_i64(id, "epoch id")?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.epoch_failed", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn epoch_failed(&self, id: u64, reason: &str, now: Timestamp) -> Result<()> {
        self.set_epoch_state(id, "failed", None, None, Some(reason), now)
            .await
    }

    #[tracing::instrument(name = "store.epoch", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn epoch(&self, id: u64) -> Result<Option<Epoch>> {
        let mut tx = self.begin().await?;
        let result = load_epoch(&mut tx, id).await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.receipt_epoch", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn receipt_epoch(&self, receipt: &ReceiptId) -> Result<Option<u64>> {
        let v: Option<Option<i64>> =
            sqlx::query_scalar("SELECT epoch_id FROM receipts WHERE id = ?")
                .bind(receipt.to_string())
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
        Ok(v.flatten().map(|e| e as u64))
    }

    #[tracing::instrument(name = "store.record_slash", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn record_slash(&self, slash: &SlashItem) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            sqlx::query(
                "INSERT INTO slashes (node_id, worker, job_id, reason, at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(slash.node_id.as_str())
            .bind(slash.worker.to_string())
            .bind(slash.job_id.to_string())
            .bind(&slash.reason)
            .bind(to_micros(slash.at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.pending_settlement", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn pending_settlement(
        &self,
        node: &NodeId,
    ) -> Result<bitsage_core::settlement::PendingSettlement> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT r.receipt FROM receipts r LEFT JOIN epochs e ON e.id = r.epoch_id \
             WHERE r.node_id = ? AND (r.epoch_id IS NULL OR e.state <> 'accepted')",
        )
        .bind(node.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let receipts = rows
            .iter()
            .map(|r| serde_json::from_str::<Receipt>(r).map_err(json_err))
            .collect::<Result<Vec<_>>>()?;
        bitsage_core::settlement::PendingSettlement::of(receipts.iter())
    }

    #[tracing::instrument(name = "store.settlement_backlog", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn settlement_backlog(&self) -> Result<bitsage_core::settlement::Backlog> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(r.completed_at) AS oldest FROM receipts r \
             LEFT JOIN epochs e ON e.id = r.epoch_id \
             WHERE r.epoch_id IS NULL OR e.state <> 'accepted'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        let n: i64 = row.try_get("n").map_err(db_err)?;
        let oldest: Option<i64> = row.try_get("oldest").map_err(db_err)?;
        let slashes: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM slashes WHERE epoch_id IS NULL")
                .fetch_one(&self.reader)
                .await
                .map_err(db_err)?;
        Ok(bitsage_core::settlement::Backlog {
            receipts: n as u64,
            oldest: oldest.map(time_of).transpose()?,
            slashes: slashes as u64,
        })
    }
}

impl SqliteStore {
    /// Sets a not-yet-accepted epoch's state.
    async fn set_epoch_state(
        &self,
        id: u64,
        state: &str,
        tx_hash: Option<&str>,
        block: Option<u64>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let done = sqlx::query(
                "UPDATE epochs SET state = ?, tx_hash = COALESCE(?, tx_hash), block = ?, \
                 reason = ?, updated_at = ? WHERE id = ? AND state <> 'accepted'",
            )
            .bind(state)
            .bind(tx_hash)
            .bind(block.map(|b| b as i64))
            .bind(reason)
            .bind(to_micros(now))
            .bind(to_i64(id, "epoch id")?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::Conflict(format!(
                    "epoch {id} is unknown or already accepted"
                )));
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }
}

#[async_trait]
impl PayerLedger for SqliteStore {
    #[tracing::instrument(name = "store.set_payer", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn set_payer(
        &self,
        account: &bitsage_core::WalletAddress,
        public_key: Option<&FeltHex>,
        credit: TokenAmount,
        at: Timestamp,
    ) -> Result<PayerAccount> {
        let mut tx = self.begin().await?;
        let result: Result<PayerAccount> = async {
            let mut p = load_payer(&mut tx, account, at).await?;
            p.credit = credit;
            p.public_key = public_key.cloned();
            p.updated_at = at;
            save_payer(&mut tx, &p).await?;
            Ok(p)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.payer", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn payer(&self, account: &bitsage_core::WalletAddress) -> Result<Option<PayerAccount>> {
        sqlx::query("SELECT * FROM payers WHERE account = ?")
            .bind(account.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(payer_from_row)
            .transpose()
    }
}

#[async_trait]
impl NodeStore for SqliteStore {
    #[tracing::instrument(name = "store.create_node", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn create_node(&self, node: &NewNode) -> Result<NodeRecord> {
        let rec = new_node_record(node);
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let done = sqlx::query(
                "INSERT INTO nodes (id, public_key, wallet, hardware, agent_version, status, \
             status_reason, status_changed_at, registered_at, wallet_proven_at, region, runtime, \
             labels, energy_tag) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(rec.id.as_str())
            .bind(rec.public_key.to_hex())
            .bind(rec.wallet.to_string())
            .bind(serde_json::to_string(&rec.hardware).map_err(json_err)?)
            .bind(&rec.agent_version)
            .bind(rec.status.as_str())
            .bind(&rec.status_reason)
            .bind(to_micros(rec.status_changed_at))
            .bind(to_micros(rec.registered_at))
            .bind(rec.wallet_proven_at.map(to_micros))
            .bind(rec.profile.region.as_deref())
            .bind(rec.profile.runtime.as_str())
            .bind(serde_json::to_string(&rec.profile.labels).map_err(json_err)?)
            .bind(rec.profile.energy_tag.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::AlreadyExists {
                    what: "node",
                    id: node.id.to_string(),
                });
            }
            append_events(&mut tx, &[event::node_registered(&rec)], rec.registered_at).await?;
            Ok(rec.clone())
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.get_node", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>> {
        sqlx::query("SELECT * FROM nodes WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(node_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_nodes", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_nodes(&self, filter: &NodeFilter, page: PageRequest) -> Result<Page<NodeRecord>> {
        let status = filter.status.map(|s| s.as_str());
        let wallet = filter.wallet.map(|w| w.to_string());
        let runtime = filter.runtime.map(|r| r.as_str());
        // Label keys are checked slugs (no quote can reach the JSON path).
        let label_path = filter.label.as_ref().map(|(k, _)| format!("$.\"{k}\""));
        let label_value = filter.label.as_ref().map(|(_, v)| v.as_str());
        const WHERE: &str = "WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR wallet = ?2) \
             AND (?5 IS NULL OR region = ?5) AND (?6 IS NULL OR runtime = ?6) \
             AND (?7 IS NULL OR json_extract(labels, ?7) = ?8) \
             AND (?9 IS NULL OR energy_tag = ?9) \
             AND (?10 IS NULL OR reputation_score >= ?10) \
             AND (?11 IS NULL OR reputation_score <= ?11)";
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM nodes {WHERE} AND ?3 IS NULL AND ?4 IS NULL"
        ))
        .bind(status)
        .bind(&wallet)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(filter.region.as_deref())
        .bind(runtime)
        .bind(label_path.as_deref())
        .bind(label_value)
        .bind(filter.energy_tag.as_deref())
        .bind(filter.reputation_min.map(i64::from))
        .bind(filter.reputation_max.map(i64::from))
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM nodes {WHERE} ORDER BY registered_at, id LIMIT ?3 OFFSET ?4"
        ))
        .bind(status)
        .bind(&wallet)
        .bind(i64::from(page.limit))
        .bind(to_i64(page.offset, "page offset")?)
        .bind(filter.region.as_deref())
        .bind(runtime)
        .bind(label_path.as_deref())
        .bind(label_value)
        .bind(filter.energy_tag.as_deref())
        .bind(filter.reputation_min.map(i64::from))
        .bind(filter.reputation_max.map(i64::from))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(node_from_row).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total as u64))
    }

    #[tracing::instrument(name = "store.silent_nodes", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn silent_nodes(
        &self,
        status: NodeStatus,
        before: Timestamp,
    ) -> Result<Vec<(NodeRecord, Timestamp)>> {
        let rows = sqlx::query(
            "SELECT *, COALESCE(last_heartbeat_at, registered_at) AS seen_at FROM nodes \
             WHERE status = ? AND COALESCE(last_heartbeat_at, registered_at) < ? \
             ORDER BY registered_at, id",
        )
        .bind(status.as_str())
        .bind(to_micros(before))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let seen: i64 = r.try_get("seen_at").map_err(db_err)?;
                Ok((node_from_row(r)?, time_of(seen)?))
            })
            .collect()
    }

    #[tracing::instrument(name = "store.apply_transition", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn apply_transition(
        &self,
        id: &NodeId,
        transition: &Transition,
        at: Timestamp,
    ) -> Result<NodeRecord> {
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let current: Option<String> = sqlx::query_scalar("SELECT status FROM nodes WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let current = NodeStatus::parse(&current.ok_or_else(|| Error::not_found("node", id))?)?;
            if current != transition.from {
                return Err(Error::Conflict(format!(
                    "node {id} is {current}, not {}",
                    transition.from
                )));
            }
            let row = sqlx::query(
                "UPDATE nodes SET status = ?, status_reason = ?, status_changed_at = ? WHERE id = ? \
                 RETURNING *",
            )
            .bind(transition.to.as_str())
            .bind(&transition.reason)
            .bind(to_micros(at))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO node_status_history (node_id, from_status, to_status, reason, at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(transition.from.as_str())
            .bind(transition.to.as_str())
            .bind(&transition.reason)
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            let rec = node_from_row(&row)?;
            append_events(&mut tx, &[event::node_status_changed(id, transition)], at).await?;
            Ok(rec)
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.set_wallet_proven", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn set_wallet_proven(&self, id: &NodeId, at: Timestamp) -> Result<NodeRecord> {
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let row = sqlx::query("UPDATE nodes SET wallet_proven_at = ? WHERE id = ? RETURNING *")
                .bind(to_micros(at))
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .ok_or_else(|| Error::not_found("node", id))?;
            node_from_row(&row)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.set_node_profile", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn set_node_profile(
        &self,
        id: &NodeId,
        profile: &bitsage_core::node::NodeProfile,
    ) -> Result<NodeRecord> {
        let labels = serde_json::to_string(&profile.labels).map_err(json_err)?;
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let row = sqlx::query(
                "UPDATE nodes SET region = ?, runtime = ?, labels = ?, energy_tag = ? \
                 WHERE id = ? RETURNING *",
            )
            .bind(profile.region.as_deref())
            .bind(profile.runtime.as_str())
            .bind(&labels)
            .bind(profile.energy_tag.as_deref())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found("node", id))?;
            node_from_row(&row)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.set_reputation", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn set_reputation(
        &self,
        id: &NodeId,
        reputation: &bitsage_core::reputation::Reputation,
    ) -> Result<()> {
        let json = serde_json::to_string(reputation).map_err(json_err)?;
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let done =
                sqlx::query("UPDATE nodes SET reputation_score = ?, reputation = ? WHERE id = ?")
                    .bind(reputation.score.map(i64::from))
                    .bind(&json)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::not_found("node", id));
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.set_drain", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn set_drain(
        &self,
        id: &NodeId,
        drain: Option<&bitsage_core::node::Drain>,
        now: Timestamp,
    ) -> Result<NodeRecord> {
        let json = drain
            .map(|d| serde_json::to_string(d).map_err(json_err))
            .transpose()?;
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let previous: Option<Option<String>> =
                sqlx::query_scalar("SELECT drain FROM nodes WHERE id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            let Some(previous) = previous else {
                return Err(Error::not_found("node", id));
            };
            if let Some(p) = previous {
                let p: bitsage_core::node::Drain = serde_json::from_str(&p).map_err(json_err)?;
                sqlx::query(
                    "UPDATE node_maintenance SET ends_at = MAX(started_at, MIN(ends_at, ?)) \
                     WHERE node_id = ? AND started_at = ?",
                )
                .bind(to_micros(now))
                .bind(id.as_str())
                .bind(to_micros(p.since))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            if let Some(d) = drain {
                sqlx::query(
                    "INSERT INTO node_maintenance (node_id, started_at, ends_at) VALUES (?, ?, ?) \
                     ON CONFLICT (node_id, started_at) DO UPDATE SET ends_at = excluded.ends_at",
                )
                .bind(id.as_str())
                .bind(to_micros(d.since))
                .bind(to_micros(d.until))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            let row = sqlx::query("UPDATE nodes SET drain = ? WHERE id = ? RETURNING *")
                .bind(json.as_deref())
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            node_from_row(&row)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.maintenance_windows", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn maintenance_windows(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<TimeWindow>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT started_at, ends_at FROM node_maintenance WHERE node_id = ? \
             AND started_at < ? AND ends_at > ? ORDER BY started_at",
        )
        .bind(id.as_str())
        .bind(to_micros(window.to))
        .bind(to_micros(window.from))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(f, t)| {
                Ok(TimeWindow {
                    from: time_of(f)?,
                    to: time_of(t)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "store.set_status_reason", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn set_status_reason(
        &self,
        id: &NodeId,
        status: NodeStatus,
        reason: &str,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let result: Result<bool> = async {
            let done = sqlx::query(
                "UPDATE nodes SET status_reason = ? WHERE id = ? AND status = ? \
                 AND status_reason <> ?",
            )
            .bind(reason)
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.status_history", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn status_history(&self, id: &NodeId) -> Result<Vec<StatusChange>> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, reason, at FROM node_status_history \
             WHERE node_id = ? ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(StatusChange {
                    node_id: id.clone(),
                    from: NodeStatus::parse(
                        &r.try_get::<String, _>("from_status").map_err(db_err)?,
                    )?,
                    to: NodeStatus::parse(&r.try_get::<String, _>("to_status").map_err(db_err)?)?,
                    reason: r.try_get("reason").map_err(db_err)?,
                    at: time_of(r.try_get("at").map_err(db_err)?)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl TelemetryStore for SqliteStore {
    #[tracing::instrument(name = "store.append_heartbeat", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn append_heartbeat(&self, hb: &Heartbeat) -> Result<NodeStatus> {
        self.heartbeats.submit(hb.clone()).await
    }

    #[tracing::instrument(name = "store.gpu_collector", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn gpu_collector(&self, id: &NodeId) -> Result<Option<ReportedCollector>> {
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT gpu_collector, gpu_collector_at FROM nodes WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
        let Some((json, at)) = row else {
            return Ok(None);
        };
        reported_collector(json, at.map(time_of).transpose()?, BACKEND)
    }

    #[tracing::instrument(name = "store.last_seen", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn last_seen(&self, id: &NodeId) -> Result<Option<Timestamp>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT last_heartbeat_at FROM nodes WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
        at.flatten().map(time_of).transpose()
    }

    #[tracing::instrument(name = "store.heartbeat_times", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn heartbeat_times(&self, id: &NodeId, window: TimeWindow) -> Result<Vec<Timestamp>> {
        let times: Vec<i64> = sqlx::query_scalar(
            "SELECT at FROM heartbeats WHERE node_id = ? AND at >= ? AND at < ? ORDER BY at",
        )
        .bind(id.as_str())
        .bind(to_micros(window.from))
        .bind(to_micros(window.to))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        times.into_iter().map(time_of).collect()
    }

    #[tracing::instrument(name = "store.heartbeat_coverage", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn heartbeat_coverage(
        &self,
        id: &NodeId,
        minutes: bitsage_core::node::MinuteRange,
    ) -> Result<bitsage_core::node::MinuteCoverage> {
        let (up, beats): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), SUM(beats) FROM heartbeat_minutes \
             WHERE node_id = ? AND minute >= ? AND minute <= ?",
        )
        .bind(id.as_str())
        .bind(minutes.first)
        .bind(minutes.last)
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        Ok(bitsage_core::node::MinuteCoverage {
            minutes_up: up as u64,
            heartbeats: beats.unwrap_or(0) as u64,
        })
    }

    #[tracing::instrument(name = "store.record_node_fact", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn record_node_fact(
        &self,
        id: &NodeId,
        fact: bitsage_core::reputation::NodeFact,
        at: Timestamp,
        detail: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            sqlx::query("INSERT INTO node_facts (node_id, fact, at, detail) VALUES (?, ?, ?, ?)")
                .bind(id.as_str())
                .bind(fact.as_str())
                .bind(to_micros(at))
                .bind(detail)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.node_facts", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn node_facts(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<bitsage_core::reputation::FactCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT fact, COUNT(*) FROM node_facts WHERE node_id = ? AND at >= ? AND at < ? \
             GROUP BY fact",
        )
        .bind(id.as_str())
        .bind(to_micros(window.from))
        .bind(to_micros(window.to))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(f, n)| Ok((bitsage_core::reputation::NodeFact::parse(&f)?, n as u64)))
            .collect()
    }

    #[tracing::instrument(name = "store.nodes_heartbeating", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn nodes_heartbeating(&self, minutes: bitsage_core::node::MinuteRange) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT node_id) FROM heartbeat_minutes WHERE minute >= ? AND minute <= ?",
        )
        .bind(minutes.first)
        .bind(minutes.last)
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        Ok(n as u64)
    }

    #[tracing::instrument(name = "store.job_timings", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn job_timings(
        &self,
        filter: &bitsage_core::timing::TimingFilter,
    ) -> Result<Vec<bitsage_core::timing::JobTiming>> {
        let limit = filter.limit.min(bitsage_core::timing::MAX_TIMINGS);
        let rows = sqlx::query(
            "SELECT * FROM job_timings WHERE completed_at >= ?1 AND completed_at < ?2 \
             AND (?3 IS NULL OR node_id = ?3) AND (?4 IS NULL OR region = ?4) \
             ORDER BY completed_at DESC, job_id DESC LIMIT ?5",
        )
        .bind(to_micros(filter.window.from))
        .bind(to_micros(filter.window.to))
        .bind(filter.node.as_ref().map(|n| n.as_str()))
        .bind(filter.region.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let g = |c: &str| r.try_get::<String, _>(c).map_err(db_err);
                let d = |c: &str| -> Result<std::time::Duration> {
                    let us: i64 = r.try_get(c).map_err(db_err)?;
                    Ok(std::time::Duration::from_micros(us.max(0) as u64))
                };
                Ok(bitsage_core::timing::JobTiming {
                    job_id: JobId::parse(&g("job_id")?)?,
                    node_id: NodeId::parse(&g("node_id")?)?,
                    kind: g("kind")?,
                    region: r.try_get("region").map_err(db_err)?,
                    completed_at: time_of(r.try_get("completed_at").map_err(db_err)?)?,
                    queue_wait: d("queue_wait_us")?,
                    run: d("run_us")?,
                    verify: d("verify_us")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "store.append_gpu_samples", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn append_gpu_samples(&self, node: &NodeId, samples: &[GpuSample]) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            if !node_exists(&mut tx, node).await? {
                return Err(Error::not_found("node", node));
            }
            insert_samples(&mut tx, node, samples).await
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.latest_gpu_samples", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn latest_gpu_samples(&self, node: &NodeId) -> Result<Vec<GpuSample>> {
        let rows = sqlx::query(
            "SELECT sample FROM (SELECT sample, device_uuid, ROW_NUMBER() OVER \
             (PARTITION BY device_uuid ORDER BY sampled_at DESC, id DESC) AS rn \
             FROM gpu_samples WHERE node_id = ?) WHERE rn = 1 ORDER BY device_uuid",
        )
        .bind(node.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(sample_from_row).collect()
    }

    #[tracing::instrument(name = "store.gpu_samples", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn gpu_samples(&self, node: &NodeId, window: TimeWindow) -> Result<Vec<GpuSample>> {
        let rows = sqlx::query(
            "SELECT sample FROM gpu_samples WHERE node_id = ? AND sampled_at >= ? \
             AND sampled_at < ? ORDER BY sampled_at, device_uuid, id",
        )
        .bind(node.as_str())
        .bind(to_micros(window.from))
        .bind(to_micros(window.to))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(sample_from_row).collect()
    }

    #[tracing::instrument(name = "store.apply_retention", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn apply_retention(
        &self,
        cut: &bitsage_core::retention::RetentionCutoffs,
    ) -> Result<bitsage_core::retention::RetentionReport> {
        use bitsage_core::retention::{roll_up, GpuMinute, RetentionReport};
        let mut tx = self.begin().await?;
        let result: Result<RetentionReport> = async {
            let mut report = RetentionReport::default();
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, node_id, sample FROM gpu_samples WHERE sampled_at < ? \
                 ORDER BY id LIMIT ?",
            )
            .bind(to_micros(cut.raw_gpu_samples))
            .bind(i64::from(bitsage_core::ports::RETENTION_BATCH))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(max_id) = rows.last().map(|r| r.0) {
                let samples = rows
                    .iter()
                    .map(|(_, n, j)| {
                        Ok((
                            NodeId::parse(n)?,
                            serde_json::from_str::<GpuSample>(j).map_err(json_err)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                for mut m in roll_up(samples.iter().map(|(n, smp)| (n, smp))) {
                    let existing: Option<String> = sqlx::query_scalar(
                        "SELECT rollup FROM gpu_sample_minutes \
                         WHERE node_id = ? AND device_uuid = ? AND minute = ?",
                    )
                    .bind(m.node_id.as_str())
                    .bind(&m.uuid)
                    .bind(m.minute)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if let Some(e) = existing {
                        m.merge(&serde_json::from_str::<GpuMinute>(&e).map_err(json_err)?);
                    }
                    sqlx::query(
                        "INSERT INTO gpu_sample_minutes (node_id, device_uuid, minute, rollup) \
                         VALUES (?, ?, ?, ?) ON CONFLICT (node_id, device_uuid, minute) \
                         DO UPDATE SET rollup = excluded.rollup",
                    )
                    .bind(m.node_id.as_str())
                    .bind(&m.uuid)
                    .bind(m.minute)
                    .bind(serde_json::to_string(&m).map_err(json_err)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                report.gpu_samples =
                    sqlx::query("DELETE FROM gpu_samples WHERE sampled_at < ? AND id <= ?")
                        .bind(to_micros(cut.raw_gpu_samples))
                        .bind(max_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?
                        .rows_affected();
            }
            // Everything else past its cutoff (times in µs, rollups by minute).
            let first = bitsage_core::node::minute_of(cut.minute_rollups);
            let mut deleted = [0u64; 6];
            for (n, (sql, before)) in [
                (
                    "DELETE FROM heartbeats WHERE at < ?",
                    to_micros(cut.raw_heartbeats),
                ),
                ("DELETE FROM heartbeat_minutes WHERE minute < ?", first),
                ("DELETE FROM gpu_sample_minutes WHERE minute < ?", first),
                (
                    "DELETE FROM node_maintenance WHERE ends_at < ?",
                    to_micros(cut.minute_rollups),
                ),
                (
                    "DELETE FROM job_timings WHERE completed_at < ?",
                    to_micros(cut.job_timings),
                ),
                (
                    "DELETE FROM node_facts WHERE at < ?",
                    to_micros(cut.node_facts),
                ),
            ]
            .into_iter()
            .enumerate()
            {
                deleted[n] = sqlx::query(sql)
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            }
            report.heartbeats = deleted[0];
            report.rollups = deleted[1] + deleted[2] + deleted[3];
            report.job_timings = deleted[4];
            report.node_facts = deleted[5];
            Ok(report)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.gpu_minutes", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn gpu_minutes(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<bitsage_core::retention::GpuMinute>> {
        let r = bitsage_core::node::counted_minutes(window, window.from);
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT rollup FROM gpu_sample_minutes WHERE node_id = ? AND minute >= ? \
             AND minute <= ? ORDER BY minute, device_uuid",
        )
        .bind(node.as_str())
        .bind(r.first)
        .bind(r.last)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|j| serde_json::from_str(j).map_err(json_err))
            .collect()
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    #[tracing::instrument(name = "store.enqueue_job", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn enqueue_job(&self, job: &NewJob) -> Result<JobRecord> {
        job.spec.kind.validate()?;
        let rec = new_job_record(job)?;
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            if let Some(f) = &job.funding {
                let mut account = load_payer(&mut tx, &f.payer, job.submitted_at).await?;
                account.reserve(job.payment, &f.limit)?;
                account.updated_at = job.submitted_at;
                save_payer(&mut tx, &account).await?;
            }
            let done = sqlx::query(
                "INSERT INTO jobs (id, kind, spec, payment, status, attempts, max_attempts, \
             submitted_at, updated_at, payer) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
            )
            .bind(rec.spec.id.to_string())
            .bind(rec.spec.kind.name())
            .bind(serde_json::to_string(&rec.spec.kind).map_err(json_err)?)
            .bind(rec.payment.to_string())
            .bind(rec.status.as_str())
            .bind(i64::from(rec.max_attempts))
            .bind(to_micros(rec.submitted_at))
            .bind(to_micros(rec.updated_at))
            .bind(rec.payer.map(|p| p.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::AlreadyExists {
                    what: "job",
                    id: job.spec.id.to_string(),
                });
            }
            append_events(&mut tx, &[event::job_queued(&rec)], rec.submitted_at).await?;
            Ok(rec.clone())
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.get_job", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>> {
        sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(job_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_jobs", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_jobs(&self, filter: &JobFilter, page: PageRequest) -> Result<Page<JobRecord>> {
        let total = self.count_jobs(filter).await?;
        let (where_sql, binds) = job_filter_sql(filter, |n| format!("?{n}"));
        let n = binds.len();
        let list_sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs {where_sql} ORDER BY submitted_at, id \
             LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        );
        let mut list = sqlx::query(&list_sql);
        for b in &binds {
            list = list.bind(b);
        }
        let rows = list
            .bind(i64::from(page.limit))
            .bind(to_i64(page.offset, "page offset")?)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(job_from_row).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total))
    }

    #[tracing::instrument(name = "store.count_jobs", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64> {
        let (where_sql, binds) = job_filter_sql(filter, |n| format!("?{n}"));
        let sql = format!("SELECT COUNT(*) FROM jobs {where_sql}");
        let mut count = sqlx::query_scalar::<_, i64>(&sql);
        for b in &binds {
            count = count.bind(b);
        }
        let total = count.fetch_one(&self.reader).await.map_err(db_err)?;
        u64::try_from(total).map_err(|_| Error::backend(BACKEND, "negative count"))
    }

    #[tracing::instrument(name = "store.lease_job", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn lease_job(
        &self,
        node: &NodeId,
        now: Timestamp,
        duration: Duration,
    ) -> Result<Option<Lease>> {
        let expires_at = lease_until(now, duration)?;
        let lease_id = LeaseId::new();
        let mut tx = self.begin().await?;
        let result: Result<Option<Lease>> = async {
            // One statement on the single writer connection: the job is taken atomically.
            let row = sqlx::query(&format!(
                "UPDATE jobs SET status = 'leased', attempts = attempts + 1, lease_id = ?, \
             lease_node = ?, leased_at = ?, lease_expires_at = ?, updated_at = ? \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' \
                         ORDER BY submitted_at, id LIMIT 1) \
             RETURNING {JOB_COLUMNS}"
            ))
            .bind(lease_id.to_string())
            .bind(node.as_str())
            .bind(to_micros(now))
            .bind(to_micros(expires_at))
            .bind(to_micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            let job = job_from_row(&row)?;
            append_events(&mut tx, &[event::job_leased(&job)], now).await?;
            let lease = job
                .lease
                .ok_or_else(|| Error::backend(BACKEND, "leased job has no lease"))?;
            Ok(Some(Lease {
                spec: job.spec,
                payment: job.payment,
                attempt: job.attempts,
                lease,
            }))
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.sweep_expired_leases", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn sweep_expired_leases(&self, now: Timestamp) -> Result<ExpirySweep> {
        let mut tx = self.begin().await?;
        let result: Result<ExpirySweep> = async {
            let rows = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'leased' AND lease_expires_at < ? \
                 ORDER BY submitted_at, id"
            ))
            .bind(to_micros(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let mut sweep = ExpirySweep::default();
            for row in &rows {
                let mut job = job_from_row(row)?;
                let before = job.status;
                let reason = expiry_error(job.lease.as_ref());
                settle_failure(&mut job, reason, now, &mut sweep);
                save_job(&mut tx, before, &job).await?;
                append_events(&mut tx, &[event::job_attempt_failed(&job)], now).await?;
            }
            Ok(sweep)
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.complete_job", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn complete_job(
        &self,
        lease: &LeaseRef,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<JobRecord> {
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            let mut job = load_job(&mut tx, &lease.job_id).await?;
            let before = job.status;
            complete(&mut job, lease, result, now)?;
            save_job(&mut tx, before, &job).await?;
            append_events(&mut tx, &[event::job_completed(&job)], now).await?;
            Ok(job)
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.fail_job", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn fail_job(&self, lease: &LeaseRef, reason: &str, now: Timestamp) -> Result<JobRecord> {
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            let mut job = load_job(&mut tx, &lease.job_id).await?;
            let before = job.status;
            check_lease(&job, lease, now)?;
            settle_failure(
                &mut job,
                reason.to_string(),
                now,
                &mut ExpirySweep::default(),
            );
            save_job(&mut tx, before, &job).await?;
            append_events(&mut tx, &[event::job_attempt_failed(&job)], now).await?;
            Ok(job)
        }
        .await;
        self.notified(finish(tx, result).await)
    }
}

#[async_trait]
impl ReceiptLedger for SqliteStore {
    #[tracing::instrument(name = "store.insert_receipt", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn insert_receipt(&self, receipt: &Receipt) -> Result<Inserted> {
        let mut tx = self.begin().await?;
        let result = insert_receipt_tx(&mut tx, receipt).await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.get_receipt", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn get_receipt(&self, id: &ReceiptId) -> Result<Option<Receipt>> {
        sqlx::query("SELECT receipt FROM receipts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(receipt_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_receipts", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_receipts(
        &self,
        filter: &ReceiptFilter,
        page: PageRequest,
    ) -> Result<Page<Receipt>> {
        let node = filter.node.as_ref().map(|n| n.to_string());
        let job = filter.job.as_ref().map(|j| j.to_string());
        let from = filter.window.map(|w| to_micros(w.from));
        let to = filter.window.map(|w| to_micros(w.to));
        const WHERE: &str = "WHERE (?1 IS NULL OR node_id = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR completed_at >= ?3) AND (?4 IS NULL OR completed_at < ?4) \
             AND (?7 IS NULL OR job_id = ?7)";
        let order = if filter.newest_first {
            "completed_at DESC, id DESC"
        } else {
            "completed_at, id"
        };
        // ?5 and ?6 (the page) are unused by the count but bound: SQLite numbers up to ?7.
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM receipts {WHERE}"))
            .bind(&node)
            .bind(&filter.kind)
            .bind(from)
            .bind(to)
            .bind(0_i64)
            .bind(0_i64)
            .bind(&job)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
        let rows = sqlx::query(&format!(
            "SELECT receipt FROM receipts {WHERE} ORDER BY {order} LIMIT ?5 OFFSET ?6"
        ))
        .bind(&node)
        .bind(&filter.kind)
        .bind(from)
        .bind(to)
        .bind(i64::from(page.limit))
        .bind(to_i64(page.offset, "page offset")?)
        .bind(&job)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(receipt_from_row).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total as u64))
    }

    #[tracing::instrument(name = "store.credit_earning", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn credit_earning(&self, entry: &EarningEntry) -> Result<Inserted> {
        entry.validate()?;
        let mut tx = self.begin().await?;
        let result = credit_tx(&mut tx, entry).await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.earnings_total", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn earnings_total(
        &self,
        node: &NodeId,
        window: Option<TimeWindow>,
    ) -> Result<EarningsTotal> {
        let Some(window) = window else {
            // All time: the running total kept by `credit_earning` (one row).
            return read_total(&self.reader, node.as_str()).await;
        };
        // A window: SQLite has no exact 256-bit arithmetic, so sum the exact TEXT amounts of
        // the window's entries (index `earnings_by_node`) in Rust.
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT gross, fee, net FROM earnings WHERE node_id = ? AND credited_at >= ? \
             AND credited_at < ?",
        )
        .bind(node.as_str())
        .bind(to_micros(window.from))
        .bind(to_micros(window.to))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let mut total = EarningsTotal::default();
        for (gross, fee, net) in &rows {
            add_amounts(&mut total, gross, fee, net)?;
        }
        Ok(total)
    }

    #[tracing::instrument(name = "store.earnings_by_day", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn earnings_by_day(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<DailyEarnings>> {
        let rows = sqlx::query(
            "SELECT * FROM earnings WHERE node_id = ? AND credited_at >= ? AND credited_at < ?",
        )
        .bind(node.as_str())
        .bind(to_micros(window.from))
        .bind(to_micros(window.to))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let entries = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>>>()?;
        daily_totals(&entries)
    }
}

#[async_trait]
impl ChainEventStore for SqliteStore {
    #[tracing::instrument(name = "store.append_chain_events", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn append_chain_events(
        &self,
        indexer: &str,
        events: &[ChainEvent],
        cursor: &IndexerCursor,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let result: Result<u64> = async {
            let mut new = 0;
            let now = bitsage_core::time::now();
            for e in events {
                let inserted = sqlx::query(
                    "INSERT INTO chain_events (block_hash, tx_hash, event_index, block_number, \
                     contract, keys, data) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (block_hash, tx_hash, event_index) DO NOTHING",
                )
                .bind(&e.block_hash)
                .bind(&e.tx_hash)
                .bind(i64::from(e.event_index))
                .bind(to_i64(e.block_number, "block number")?)
                .bind(&e.contract)
                .bind(serde_json::to_string(&e.keys).map_err(json_err)?)
                .bind(serde_json::to_string(&e.data).map_err(json_err)?)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                if inserted == 1 {
                    append_events(&mut tx, &[event::chain_event_indexed(e)], now).await?;
                }
                new += inserted;
            }
            set_cursor(&mut tx, indexer, cursor).await?;
            Ok(new)
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.chain_events", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn chain_events(&self, from_block: u64, to_block: u64) -> Result<Vec<ChainEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM chain_events WHERE block_number >= ? AND block_number <= ? \
             ORDER BY block_number, tx_hash, event_index",
        )
        .bind(to_i64(from_block, "block number")?)
        .bind(to_i64(to_block.min(i64::MAX as u64), "block number")?)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(name = "store.rewind_chain", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn rewind_chain(&self, indexer: &str, to: &IndexerCursor) -> Result<u64> {
        let mut tx = self.begin().await?;
        let result: Result<u64> = async {
            let deleted = sqlx::query("DELETE FROM chain_events WHERE block_number > ?")
                .bind(to_i64(to.block_number, "block number")?)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            set_cursor(&mut tx, indexer, to).await?;
            let e = event::chain_rewound(indexer, to.block_number, deleted);
            append_events(&mut tx, &[e], bitsage_core::time::now()).await?;
            Ok(deleted)
        }
        .await;
        self.notified(finish(tx, result).await)
    }

    #[tracing::instrument(name = "store.indexer_cursor", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn indexer_cursor(&self, indexer: &str) -> Result<Option<IndexerCursor>> {
        let row =
            sqlx::query("SELECT block_number, block_hash FROM indexer_cursors WHERE indexer = ?")
                .bind(indexer)
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
        row.map(|r| {
            let block: i64 = r.try_get("block_number").map_err(db_err)?;
            Ok(IndexerCursor {
                block_number: u64::try_from(block)
                    .map_err(|_| Error::backend(BACKEND, "bad block"))?,
                block_hash: r.try_get("block_hash").map_err(db_err)?,
            })
        })
        .transpose()
    }
}

async fn set_cursor(
    tx: &mut Transaction<'_, Sqlite>,
    indexer: &str,
    cursor: &IndexerCursor,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO indexer_cursors (indexer, block_number, block_hash) VALUES (?, ?, ?) \
         ON CONFLICT (indexer) DO UPDATE SET block_number = excluded.block_number, \
         block_hash = excluded.block_hash",
    )
    .bind(indexer)
    .bind(to_i64(cursor.block_number, "block number")?)
    .bind(&cursor.block_hash)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
