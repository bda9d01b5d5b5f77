//! [`PgStore`]: the scale-out store. Several coordinators may share one database: every method
//! is one transaction, jobs are leased with `FOR UPDATE SKIP LOCKED`, rows that a method reads
//! and then changes are locked with `FOR UPDATE`. Money is `NUMERIC(78,0)` and sums are exact.

use std::str::FromStr;
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
use bitsage_core::ledger::{DailyEarnings, EarningEntry, EarningsTotal};
use bitsage_core::node::{Heartbeat, NewNode, NodeFilter, NodeRecord, StatusChange};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::receipt::{Receipt, ReceiptFilter};
use bitsage_core::{ChainEventStore, JobQueue, NodeStore, ReceiptLedger, TelemetryStore};
use bitsage_core::{
    EntryId, Error, EventLog, Inserted, JobId, JobStatus, JobStore, LeaseId, NodeId, NodeStatus,
    ProofStore, ReceiptId, ReplayLog, Result, TimeWindow, Timestamp, TokenAmount, Transition,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use crate::common::{
    apply_payer_effect, check_lease, complete, epoch_state, expiry_error, job_filter_sql,
    lease_until, new_job_record, new_node_record, payer_effect, reported_collector, settle_failure,
    settle_payer,
};
use crate::group_commit::GroupCommit;

/// The advisory lock that serialises epoch assembly across coordinators.
const EPOCH_LOCK: i64 = 0x6269_7473_6570_6f63; // "bitsepoc"

use crate::pg_events::PG_EVENT_CHANNEL;
use bitsage_core::funding::PayerAccount;
use bitsage_core::receipt::Receipt as StoredReceipt;
use bitsage_core::settlement::{Epoch, EpochState, SettlementItem, SettlementLedger, SlashItem};
use bitsage_core::wallet::FeltHex;
use bitsage_core::PayerLedger;

pub(crate) const BACKEND: &str = "postgres";

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    crate::common::unavailable_or(BACKEND, e)
}

/// How long a request waits for a database connection before it is answered `unavailable`
/// (default of [`PgStore::connect_with`]).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn json_err(e: serde_json::Error) -> Error {
    Error::backend(BACKEND, e)
}

pub(crate) fn to_i64(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, "exceeds 2^63 - 1"))
}

fn amount(s: &str) -> Result<TokenAmount> {
    TokenAmount::from_base_units(s).map_err(|e| Error::backend(BACKEND, e.to_string()))
}

/// A sum computed by PostgreSQL: exact, but possibly beyond u256.
fn sum_amount(s: &str) -> Result<TokenAmount> {
    match TokenAmount::from_base_units(s) {
        Ok(v) => Ok(v),
        Err(_) if s.len() >= 78 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Err(Error::Overflow("earnings sum exceeds u256"))
        }
        Err(e) => Err(Error::backend(BACKEND, e.to_string())),
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Heartbeats wait here for a shared commit ([`crate::pg_heartbeats`]).
    heartbeats: GroupCommit<Heartbeat, NodeStatus>,
}

/// Most heartbeats in one group commit.
const HEARTBEAT_BATCH: usize = 2_048;
/// Most heartbeats waiting for a commit before writers wait for room.
const HEARTBEAT_QUEUE: usize = 65_536;
/// Group commits in flight at once (each holds one pooled connection).
const HEARTBEAT_COMMITS: usize = 4;

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| Error::invalid("database url", "not a PostgreSQL URL"))?;
        Self::connect_with(opts, 16).await
    }

    /// Connects with explicit options and pool size, and applies migrations.
    pub async fn connect_with(opts: PgConnectOptions, max_connections: u32) -> Result<Self> {
        Self::connect_with_timeout(opts, max_connections, ACQUIRE_TIMEOUT).await
    }

    /// Connects with explicit options, pool size and connection wait (`acquire_timeout`: how
    /// long a call waits for a connection before failing `Unavailable`), and applies
    /// migrations.
    pub async fn connect_with_timeout(
        opts: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        let batch_pool = pool.clone();
        let heartbeats = GroupCommit::spawn(
            BACKEND,
            HEARTBEAT_BATCH,
            HEARTBEAT_QUEUE,
            HEARTBEAT_COMMITS.min(max_connections.max(1) as usize),
            move |beats| {
                let pool = batch_pool.clone();
                async move { crate::pg_heartbeats::append(&pool, beats).await }
            },
        );
        Ok(Self { pool, heartbeats })
    }

    /// The connection pool (for embedding code that shares it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for in-flight work.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'_, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }
}

const NODE_COLUMNS: &str = "id, public_key, wallet, hardware::text AS hardware, agent_version, \
     status, status_reason, status_changed_at, registered_at, wallet_proven_at, region, runtime, \
     labels::text AS labels, energy_tag, reputation::text AS reputation, drain::text AS drain";

fn node_from_row(row: &PgRow) -> Result<NodeRecord> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    Ok(NodeRecord {
        id: NodeId::parse(&g("id")?)?,
        public_key: bitsage_core::crypto::PublicKey::from_hex(&g("public_key")?)?,
        wallet: bitsage_core::WalletAddress::parse(&g("wallet")?)?,
        hardware: serde_json::from_str(&g("hardware")?).map_err(json_err)?,
        agent_version: g("agent_version")?,
        status: NodeStatus::parse(&g("status")?)?,
        status_reason: g("status_reason")?,
        status_changed_at: row.try_get("status_changed_at").map_err(db_err)?,
        registered_at: row.try_get("registered_at").map_err(db_err)?,
        wallet_proven_at: row.try_get("wallet_proven_at").map_err(db_err)?,
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

/// Stores a completed job's timing (once per job).
async fn insert_timing(
    tx: &mut Transaction<'_, Postgres>,
    t: &bitsage_core::timing::JobTiming,
) -> Result<()> {
    let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO job_timings (job_id, node_id, kind, region, completed_at, queue_wait_us, \
         run_us, verify_us) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(t.job_id.to_string())
    .bind(t.node_id.as_str())
    .bind(&t.kind)
    .bind(t.region.as_deref())
    .bind(t.completed_at)
    .bind(us(t.queue_wait))
    .bind(us(t.run))
    .bind(us(t.verify))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

const JOB_COLUMNS: &str = "id::text AS id, spec::text AS spec, payment::text AS payment, status, \
     attempts, max_attempts, lease_id::text AS lease_id, lease_node, leased_at, \
     lease_expires_at, result::text AS result, completed_by, last_error, submitted_at, updated_at, \
     payer";

fn job_from_row(row: &PgRow) -> Result<JobRecord> {
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
            leased_at: row.try_get("leased_at").map_err(db_err)?,
            expires_at: row.try_get("lease_expires_at").map_err(db_err)?,
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
        let v: i32 = row.try_get(c).map_err(db_err)?;
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
        submitted_at: row.try_get("submitted_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
        payer: row
            .try_get::<Option<String>, _>("payer")
            .map_err(db_err)?
            .map(|p| bitsage_core::WalletAddress::parse(&p))
            .transpose()?,
    })
}

const PAYER_COLUMNS: &str = "account, public_key, credit::text AS credit, \
     reserved::text AS reserved, unsettled::text AS unsettled, spent::text AS spent, updated_at";

fn payer_from_row(row: &PgRow) -> Result<PayerAccount> {
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
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

/// A payer's books, locked for this transaction (created empty first when new, so that
/// concurrent first submissions of one account serialise on its row).
async fn lock_payer(
    tx: &mut Transaction<'_, Postgres>,
    account: &bitsage_core::WalletAddress,
    at: Timestamp,
) -> Result<PayerAccount> {
    sqlx::query(
        "INSERT INTO payers (account, credit, reserved, unsettled, spent, updated_at) \
         VALUES ($1, 0, 0, 0, 0, $2) ON CONFLICT (account) DO NOTHING",
    )
    .bind(account.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    let row = sqlx::query(&format!(
        "SELECT {PAYER_COLUMNS} FROM payers WHERE account = $1 FOR UPDATE"
    ))
    .bind(account.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    payer_from_row(&row)
}

async fn save_payer(tx: &mut Transaction<'_, Postgres>, p: &PayerAccount) -> Result<()> {
    sqlx::query(
        "UPDATE payers SET public_key = $2, credit = $3::numeric, reserved = $4::numeric, \
         unsettled = $5::numeric, spent = $6::numeric, updated_at = $7 WHERE account = $1",
    )
    .bind(p.account.to_string())
    .bind(p.public_key.as_ref().map(|k| k.to_string()))
    .bind(p.credit.to_string())
    .bind(p.reserved.to_string())
    .bind(p.unsettled.to_string())
    .bind(p.spent.to_string())
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn load_job_for_update(tx: &mut Transaction<'_, Postgres>, id: &JobId) -> Result<JobRecord> {
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1::uuid FOR UPDATE"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("job", id))?;
    job_from_row(&row)
}

/// Writes back the mutable part of a job after a state change (moved from `before`), and
/// what the move does to its payer's books.
async fn save_job(
    tx: &mut Transaction<'_, Postgres>,
    before: JobStatus,
    job: &JobRecord,
) -> Result<()> {
    if let (Some(effect), Some(payer)) = (payer_effect(before, job), job.payer) {
        let mut account = lock_payer(tx, &payer, job.updated_at).await?;
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
        "UPDATE jobs SET status = $1, attempts = $2, lease_id = $3::uuid, lease_node = $4, \
         leased_at = $5, lease_expires_at = $6, result = $7::jsonb, completed_by = $8, \
         last_error = $9, updated_at = $10 WHERE id = $11::uuid",
    )
    .bind(job.status.as_str())
    .bind(i32::try_from(job.attempts).unwrap_or(i32::MAX))
    .bind(job.lease.as_ref().map(|l| l.lease_id.to_string()))
    .bind(job.lease.as_ref().map(|l| l.node_id.to_string()))
    .bind(job.lease.as_ref().map(|l| l.leased_at))
    .bind(job.lease.as_ref().map(|l| l.expires_at))
    .bind(result)
    .bind(job.completed_by.as_ref().map(|n| n.to_string()))
    .bind(job.last_error.as_deref())
    .bind(job.updated_at)
    .bind(job.spec.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn sample_from_row(row: &PgRow) -> Result<GpuSample> {
    serde_json::from_str(&row.try_get::<String, _>("sample").map_err(db_err)?).map_err(json_err)
}

fn receipt_from_row(row: &PgRow) -> Result<Receipt> {
    serde_json::from_str(&row.try_get::<String, _>("receipt").map_err(db_err)?).map_err(json_err)
}

const ENTRY_COLUMNS: &str =
    "id::text AS id, node_id, job_id::text AS job_id, gross::text AS gross, \
     fee::text AS fee, net::text AS net, credited_at";

fn entry_from_row(row: &PgRow) -> Result<EarningEntry> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    Ok(EarningEntry {
        id: EntryId::parse(&g("id")?)?,
        node_id: NodeId::parse(&g("node_id")?)?,
        job_id: JobId::parse(&g("job_id")?)?,
        gross: amount(&g("gross")?)?,
        fee: amount(&g("fee")?)?,
        net: amount(&g("net")?)?,
        credited_at: row.try_get("credited_at").map_err(db_err)?,
    })
}

fn totals_from_row(row: &PgRow) -> Result<EarningsTotal> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    let entries: i64 = row.try_get("entries").map_err(db_err)?;
    Ok(EarningsTotal {
        entries: entries as u64,
        gross: sum_amount(&g("gross")?)?,
        fee: sum_amount(&g("fee")?)?,
        net: sum_amount(&g("net")?)?,
    })
}

const EVENT_COLUMNS: &str = "block_hash, tx_hash, event_index, block_number, contract, \
     keys::text AS keys, data::text AS data";

fn event_from_row(row: &PgRow) -> Result<ChainEvent> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    let block: i64 = row.try_get("block_number").map_err(db_err)?;
    let index: i32 = row.try_get("event_index").map_err(db_err)?;
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

/// The advisory lock every event-appending transaction takes (as its last step) so event ids
/// are assigned in commit order ("BSEV" in ASCII).
const EVENT_LOCK: i64 = 0x4253_4556;

/// Appends events to the outbox inside `tx`; call it **last** in the transaction. It takes
/// [`EVENT_LOCK`] (held until commit), so a reader that saw id `n` never later finds a
/// smaller new id, and announces the events with `pg_notify` (delivered at commit).
async fn append_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewEvent],
    at: Timestamp,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENT_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let data: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(&e.data))
        .collect::<std::result::Result<_, _>>()
        .map_err(json_err)?;
    sqlx::query(
        "INSERT INTO events (topic, kind, at, data) \
         SELECT t, k, $3, d::jsonb FROM UNNEST($1::text[], $2::text[], $4::text[]) \
         WITH ORDINALITY AS u(t, k, d, n) ORDER BY n",
    )
    .bind(&topics)
    .bind(&kinds)
    .bind(at)
    .bind(&data)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(PG_EVENT_CHANNEL)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn stored_event_from_row(row: &PgRow) -> Result<StoredEvent> {
    let id: i64 = row.try_get("id").map_err(db_err)?;
    let topic: String = row.try_get("topic").map_err(db_err)?;
    let data: String = row.try_get("data").map_err(db_err)?;
    Ok(StoredEvent {
        id: u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative event id"))?,
        topic: topic.parse()?,
        kind: row.try_get("kind").map_err(db_err)?,
        at: row.try_get("at").map_err(db_err)?,
        data: serde_json::from_str(&data).map_err(json_err)?,
    })
}

/// Stores a receipt inside `tx` (idempotent by id); no event (the caller appends it).
async fn insert_receipt_tx(
    tx: &mut Transaction<'_, Postgres>,
    receipt: &Receipt,
) -> Result<Inserted> {
    let done = sqlx::query(
        "INSERT INTO receipts (id, job_id, node_id, kind, completed_at, receipt) \
         VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::jsonb) ON CONFLICT (id) DO NOTHING",
    )
    .bind(receipt.body.id.to_string())
    .bind(receipt.body.job_id.to_string())
    .bind(receipt.body.node_id.as_str())
    .bind(&receipt.body.kind)
    .bind(receipt.body.completed_at)
    .bind(serde_json::to_string(receipt).map_err(json_err)?)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 1 {
        return Ok(Inserted::New);
    }
    let existing = sqlx::query("SELECT receipt::text AS receipt FROM receipts WHERE id = $1::uuid")
        .bind(receipt.body.id.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    if receipt_from_row(&existing)? == *receipt {
        Ok(Inserted::AlreadyPresent)
    } else {
        Err(Error::AlreadyExists {
            what: "receipt",
            id: receipt.body.id.to_string(),
        })
    }
}

/// Credits a ledger entry inside `tx` (idempotent by id).
async fn credit_tx(tx: &mut Transaction<'_, Postgres>, entry: &EarningEntry) -> Result<Inserted> {
    let done = sqlx::query(
        "INSERT INTO earnings (id, node_id, job_id, gross, fee, net, credited_at) \
         VALUES ($1::uuid, $2, $3::uuid, $4::numeric, $5::numeric, $6::numeric, $7) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(entry.id.to_string())
    .bind(entry.node_id.as_str())
    .bind(entry.job_id.to_string())
    .bind(entry.gross.to_string())
    .bind(entry.fee.to_string())
    .bind(entry.net.to_string())
    .bind(entry.credited_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 1 {
        return Ok(Inserted::New);
    }
    let existing = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM earnings WHERE id = $1::uuid"
    ))
    .bind(entry.id.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    if entry_from_row(&existing)? == *entry {
        Ok(Inserted::AlreadyPresent)
    } else {
        Err(Error::AlreadyExists {
            what: "ledger entry",
            id: entry.id.to_string(),
        })
    }
}

/// Ends a transaction: commits on success, rolls back on error. A dropped sqlx transaction
/// only rolls back when its connection is next used, keeping its row locks until then, so
/// every transaction here ends explicitly.
pub(crate) async fn finish<T>(tx: Transaction<'_, Postgres>, result: Result<T>) -> Result<T> {
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
impl EventLog for PgStore {
    #[tracing::instrument(name = "store.events_after", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT id, topic, kind, at, data::text AS data FROM events WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(stored_event_from_row).collect()
    }

    #[tracing::instrument(name = "store.last_event_id", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn last_event_id(&self) -> Result<u64> {
        // The newest event is never purged, so MAX(id) never goes back.
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(id.and_then(|i| u64::try_from(i).ok()).unwrap_or(0))
    }

    #[tracing::instrument(name = "store.purge_events", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn purge_events(&self, before: Timestamp) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM events WHERE at < $1 AND id < (SELECT MAX(id) FROM events)")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected(),
        )
    }

    #[tracing::instrument(name = "store.append_event", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn append_event(&self, event: &NewEvent, at: Timestamp) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        append_events(&mut tx, std::slice::from_ref(event), at).await?;
        let id: i64 = sqlx::query_scalar("SELECT currval(pg_get_serial_sequence('events', 'id'))")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative event id"))
    }
}

#[async_trait]
impl ReplayLog for PgStore {
    #[tracing::instrument(name = "store.remember_message", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn remember_message(&self, digest: &Hash32, keep_until: Timestamp) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO replay_log (digest, keep_until) VALUES ($1, $2) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&digest.0[..])
        .bind(keep_until)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(inserted == 1)
    }

    #[tracing::instrument(name = "store.purge_messages", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn purge_messages(&self, before: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM replay_log WHERE keep_until < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }
}

/// The shared proof store of a PostgreSQL deployment: envelopes (JSON) in the `proofs` table.
#[async_trait]
impl ProofStore for PgStore {
    fn proof_backend(&self) -> &'static str {
        BACKEND
    }

    #[tracing::instrument(name = "store.put_proof", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn put_proof(&self, envelope: &ProofEnvelope) -> Result<String> {
        let json = serde_json::to_vec(envelope).map_err(json_err)?;
        // zstd-compressed (rows of earlier versions hold plain JSON; `get_proof` reads both).
        let bytes = zstd::encode_all(&json[..], 3).map_err(|e| Error::backend(BACKEND, e))?;
        sqlx::query(
            "INSERT INTO proofs (proof_hash, envelope) VALUES ($1, $2) \
             ON CONFLICT (proof_hash) DO NOTHING",
        )
        .bind(&envelope.proof_hash.0[..])
        .bind(bytes)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(format!("postgres:proofs/{}", envelope.proof_hash.to_hex()))
    }

    #[tracing::instrument(name = "store.get_proof", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn get_proof(&self, hash: &Hash32) -> Result<Option<ProofEnvelope>> {
        let row: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT envelope FROM proofs WHERE proof_hash = $1")
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        let Some(bytes) = row else {
            return Ok(None);
        };
        // A zstd frame starts with 28 b5 2f fd; plain JSON with `{`.
        let json = if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            zstd::decode_all(&bytes[..]).map_err(|e| Error::backend(BACKEND, e))?
        } else {
            bytes
        };
        serde_json::from_slice(&json).map(Some).map_err(json_err)
    }

    #[tracing::instrument(name = "store.purge_proofs_before", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn purge_proofs_before(&self, before: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM proofs WHERE stored_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }
}

#[async_trait]
impl JobStore for PgStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    #[tracing::instrument(name = "store.settle_completion", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn settle_completion(&self, c: &VerifiedCompletion, now: Timestamp) -> Result<JobRecord> {
        c.check()?;
        c.entry.validate()?;
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            let mut job = load_job_for_update(&mut tx, &c.lease.job_id).await?;
            let before = job.status;
            let mut events = Vec::new();
            if !c.already_applied_to(&job) {
                let region: Option<String> =
                    sqlx::query_scalar("SELECT region FROM nodes WHERE id = $1")
                        .bind(c.lease.node_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?
                        .flatten();
                let timing = bitsage_core::timing::JobTiming::of(&job, now, c.verify_time, region);
                complete(&mut job, &c.lease, &c.result, now)?;
                save_job(&mut tx, before, &job).await?;
                events.push(event::job_completed(&job));
                if let Some(t) = timing {
                    insert_timing(&mut tx, &t).await?;
                }
                sqlx::query(
                    "INSERT INTO node_facts (node_id, fact, at, detail) VALUES ($1, $2, $3, $4)",
                )
                .bind(c.lease.node_id.as_str())
                .bind(bitsage_core::reputation::NodeFact::LeaseCompleted.as_str())
                .bind(now)
                .bind(format!("job {} verified", c.lease.job_id))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            if insert_receipt_tx(&mut tx, &c.receipt).await? == Inserted::New {
                events.push(event::receipt_issued(&c.receipt));
            }
            credit_tx(&mut tx, &c.entry).await?;
            append_events(&mut tx, &events, now).await?;
            Ok(job)
        }
        .await;
        finish(tx, result).await
    }
}

/// An epoch with its items and slashes, read inside `tx`.
async fn load_epoch(tx: &mut Transaction<'_, Postgres>, id: u64) -> Result<Option<Epoch>> {
    let id_i = to_i64(id, "epoch id")?;
    let Some(row) = sqlx::query("SELECT * FROM epochs WHERE id = $1")
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
        "SELECT r.receipt::text AS receipt, j.payer AS payer, n.wallet AS wallet FROM receipts r \
         LEFT JOIN jobs j ON j.id = r.job_id LEFT JOIN nodes n ON n.id = r.node_id \
         WHERE r.epoch_id = $1 ORDER BY r.completed_at, r.id",
    )
    .bind(id_i)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let items = rows
        .iter()
        .map(|r| {
            let receipt: StoredReceipt =
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
    let slash_rows = sqlx::query("SELECT * FROM slashes WHERE epoch_id = $1 ORDER BY seq")
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
                at: r.try_get("at").map_err(db_err)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Epoch {
        id,
        state,
        items,
        slashes,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    }))
}

#[async_trait]
impl SettlementLedger for PgStore {
    #[tracing::instrument(name = "store.next_epoch", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn next_epoch(&self, max_items: u32, now: Timestamp) -> Result<Option<Epoch>> {
        let mut tx = self.begin().await?;
        let result: Result<Option<Epoch>> = async {
            // One assembler at a time across coordinators.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EPOCH_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
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
                "SELECT id::text FROM receipts WHERE epoch_id IS NULL \
                 ORDER BY completed_at, id LIMIT $1",
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
                "INSERT INTO epochs (id, state, created_at, updated_at) \
                 VALUES ($1, 'pending', $2, $2)",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("UPDATE receipts SET epoch_id = $1 WHERE id::text = ANY($2)")
                .bind(id)
                .bind(&waiting)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("UPDATE slashes SET epoch_id = $1 WHERE epoch_id IS NULL")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            load_epoch(&mut tx, id as u64).await
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.unfinished_epoch", level = "debug", skip_all, fields(db.system = "postgresql"))]
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

    #[tracing::instrument(name = "store.epoch_sent", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn epoch_sent(&self, id: u64, tx_hash: &str, now: Timestamp) -> Result<()> {
        self.set_epoch_state(id, "sent", Some(tx_hash), None, now)
            .await
    }

    #[tracing::instrument(name = "store.epoch_accepted", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn epoch_accepted(
        &self,
        id: u64,
        tx_hash: &str,
        block: u64,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            sqlx::query("SELECT id FROM epochs WHERE id = $1 FOR UPDATE")
                .bind(to_i64(id, "epoch id")?)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(epoch) = load_epoch(&mut tx, id).await? else {
                return Err(Error::not_found("epoch", id));
            };
            if matches!(epoch.state, EpochState::Accepted { .. }) {
                return Ok(());
            }
            for item in &epoch.items {
                if let Some(payer) = item.payer {
                    let mut account = lock_payer(&mut tx, &payer, now).await?;
                    settle_payer(&mut account, item.receipt.body.payment, now)?;
                    save_payer(&mut tx, &account).await?;
                }
            }
            sqlx::query(
                "UPDATE epochs SET state = 'accepted', tx_hash = $1, block = $2, reason = NULL, \
                 updated_at = $3 WHERE id = $4",
            )
            .bind(tx_hash)
            .bind(to_i64(block, "block")?)
            .bind(now)
            .bind(to_i64(id, "epoch id")?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.epoch_failed", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn epoch_failed(&self, id: u64, reason: &str, now: Timestamp) -> Result<()> {
        self.set_epoch_state(id, "failed", None, Some(reason), now)
            .await
    }

    #[tracing::instrument(name = "store.epoch", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn epoch(&self, id: u64) -> Result<Option<Epoch>> {
        let mut tx = self.begin().await?;
        let result = load_epoch(&mut tx, id).await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.receipt_epoch", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn receipt_epoch(&self, receipt: &bitsage_core::ReceiptId) -> Result<Option<u64>> {
        let v: Option<Option<i64>> =
            sqlx::query_scalar("SELECT epoch_id FROM receipts WHERE id = $1::uuid")
                .bind(receipt.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(v.flatten().map(|e| e as u64))
    }

    #[tracing::instrument(name = "store.record_slash", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn record_slash(&self, slash: &SlashItem) -> Result<()> {
        sqlx::query(
            "INSERT INTO slashes (node_id, worker, job_id, reason, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(slash.node_id.as_str())
        .bind(slash.worker.to_string())
        .bind(slash.job_id.to_string())
        .bind(&slash.reason)
        .bind(slash.at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    #[tracing::instrument(name = "store.pending_settlement", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn pending_settlement(
        &self,
        node: &NodeId,
    ) -> Result<bitsage_core::settlement::PendingSettlement> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT r.receipt::text FROM receipts r LEFT JOIN epochs e ON e.id = r.epoch_id \
             WHERE r.node_id = $1 AND (r.epoch_id IS NULL OR e.state <> 'accepted')",
        )
        .bind(node.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let receipts = rows
            .iter()
            .map(|r| serde_json::from_str::<Receipt>(r).map_err(json_err))
            .collect::<Result<Vec<_>>>()?;
        bitsage_core::settlement::PendingSettlement::of(receipts.iter())
    }

    #[tracing::instrument(name = "store.settlement_backlog", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn settlement_backlog(&self) -> Result<bitsage_core::settlement::Backlog> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(r.completed_at) AS oldest FROM receipts r \
             LEFT JOIN epochs e ON e.id = r.epoch_id \
             WHERE r.epoch_id IS NULL OR e.state <> 'accepted'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let n: i64 = row.try_get("n").map_err(db_err)?;
        let slashes: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM slashes WHERE epoch_id IS NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(bitsage_core::settlement::Backlog {
            receipts: n as u64,
            oldest: row.try_get("oldest").map_err(db_err)?,
            slashes: slashes as u64,
        })
    }
}

impl PgStore {
    /// Sets a not-yet-accepted epoch's state.
    async fn set_epoch_state(
        &self,
        id: u64,
        state: &str,
        tx_hash: Option<&str>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE epochs SET state = $1, tx_hash = COALESCE($2, tx_hash), reason = $3, \
             updated_at = $4 WHERE id = $5 AND state <> 'accepted'",
        )
        .bind(state)
        .bind(tx_hash)
        .bind(reason)
        .bind(now)
        .bind(to_i64(id, "epoch id")?)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "epoch {id} is unknown or already accepted"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl PayerLedger for PgStore {
    #[tracing::instrument(name = "store.set_payer", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn set_payer(
        &self,
        account: &bitsage_core::WalletAddress,
        public_key: Option<&FeltHex>,
        credit: TokenAmount,
        at: Timestamp,
    ) -> Result<PayerAccount> {
        let mut tx = self.begin().await?;
        let result: Result<PayerAccount> = async {
            let mut p = lock_payer(&mut tx, account, at).await?;
            p.credit = credit;
            p.public_key = public_key.cloned();
            p.updated_at = at;
            save_payer(&mut tx, &p).await?;
            Ok(p)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.payer", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn payer(&self, account: &bitsage_core::WalletAddress) -> Result<Option<PayerAccount>> {
        sqlx::query(&format!(
            "SELECT {PAYER_COLUMNS} FROM payers WHERE account = $1"
        ))
        .bind(account.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(payer_from_row)
        .transpose()
    }
}

#[async_trait]
impl NodeStore for PgStore {
    #[tracing::instrument(name = "store.create_node", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn create_node(&self, node: &NewNode) -> Result<NodeRecord> {
        let rec = new_node_record(node);
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let done = sqlx::query(
                "INSERT INTO nodes (id, public_key, wallet, hardware, agent_version, status, \
             status_reason, status_changed_at, registered_at, wallet_proven_at, region, runtime, \
             labels, energy_tag) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14) \
             ON CONFLICT (id) DO NOTHING",
            )
            .bind(rec.id.as_str())
            .bind(rec.public_key.to_hex())
            .bind(rec.wallet.to_string())
            .bind(serde_json::to_string(&rec.hardware).map_err(json_err)?)
            .bind(&rec.agent_version)
            .bind(rec.status.as_str())
            .bind(&rec.status_reason)
            .bind(rec.status_changed_at)
            .bind(rec.registered_at)
            .bind(rec.wallet_proven_at)
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
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.get_node", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>> {
        sqlx::query(&format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(node_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.silent_nodes", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn silent_nodes(
        &self,
        status: NodeStatus,
        before: Timestamp,
    ) -> Result<Vec<(NodeRecord, Timestamp)>> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS}, COALESCE(last_heartbeat_at, registered_at) AS seen_at \
             FROM nodes WHERE status = $1 AND COALESCE(last_heartbeat_at, registered_at) < $2 \
             ORDER BY registered_at, id"
        ))
        .bind(status.as_str())
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let seen: Timestamp = r.try_get("seen_at").map_err(db_err)?;
                Ok((node_from_row(r)?, seen))
            })
            .collect()
    }

    #[tracing::instrument(name = "store.list_nodes", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_nodes(&self, filter: &NodeFilter, page: PageRequest) -> Result<Page<NodeRecord>> {
        let status = filter.status.map(|s| s.as_str());
        let wallet = filter.wallet.map(|w| w.to_string());
        let runtime = filter.runtime.map(|r| r.as_str());
        let label_key = filter.label.as_ref().map(|(k, _)| k.as_str());
        let label_value = filter.label.as_ref().map(|(_, v)| v.as_str());
        const WHERE: &str = "WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR wallet = $2) AND ($5::text IS NULL OR region = $5) \
             AND ($6::text IS NULL OR runtime = $6) \
             AND ($7::text IS NULL OR labels ->> $7 = $8::text) \
             AND ($9::text IS NULL OR energy_tag = $9) \
             AND ($10::integer IS NULL OR reputation_score >= $10) \
             AND ($11::integer IS NULL OR reputation_score <= $11)";
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM nodes {WHERE} AND $3::bigint IS NULL AND $4::bigint IS NULL"
        ))
        .bind(status)
        .bind(&wallet)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(filter.region.as_deref())
        .bind(runtime)
        .bind(label_key)
        .bind(label_value)
        .bind(filter.energy_tag.as_deref())
        .bind(filter.reputation_min.map(|v| v as i32))
        .bind(filter.reputation_max.map(|v| v as i32))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes {WHERE} ORDER BY registered_at, id \
             LIMIT $3 OFFSET $4"
        ))
        .bind(status)
        .bind(&wallet)
        .bind(i64::from(page.limit))
        .bind(to_i64(page.offset, "page offset")?)
        .bind(filter.region.as_deref())
        .bind(runtime)
        .bind(label_key)
        .bind(label_value)
        .bind(filter.energy_tag.as_deref())
        .bind(filter.reputation_min.map(|v| v as i32))
        .bind(filter.reputation_max.map(|v| v as i32))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(node_from_row).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total as u64))
    }

    #[tracing::instrument(name = "store.apply_transition", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn apply_transition(
        &self,
        id: &NodeId,
        transition: &Transition,
        at: Timestamp,
    ) -> Result<NodeRecord> {
        let mut tx = self.begin().await?;
        let result: Result<NodeRecord> = async {
            let current: Option<String> =
                sqlx::query_scalar("SELECT status FROM nodes WHERE id = $1 FOR UPDATE")
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
            let row = sqlx::query(&format!(
                "UPDATE nodes SET status = $1, status_reason = $2, status_changed_at = $3 \
                 WHERE id = $4 RETURNING {NODE_COLUMNS}"
            ))
            .bind(transition.to.as_str())
            .bind(&transition.reason)
            .bind(at)
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO node_status_history (node_id, from_status, to_status, reason, at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.as_str())
            .bind(transition.from.as_str())
            .bind(transition.to.as_str())
            .bind(&transition.reason)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            let rec = node_from_row(&row)?;
            append_events(&mut tx, &[event::node_status_changed(id, transition)], at).await?;
            Ok(rec)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.set_wallet_proven", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn set_wallet_proven(&self, id: &NodeId, at: Timestamp) -> Result<NodeRecord> {
        let row = sqlx::query(&format!(
            "UPDATE nodes SET wallet_proven_at = $1 WHERE id = $2 RETURNING {NODE_COLUMNS}"
        ))
        .bind(at)
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found("node", id))?;
        node_from_row(&row)
    }

    #[tracing::instrument(name = "store.set_node_profile", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn set_node_profile(
        &self,
        id: &NodeId,
        profile: &bitsage_core::node::NodeProfile,
    ) -> Result<NodeRecord> {
        let row = sqlx::query(&format!(
            "UPDATE nodes SET region = $1, runtime = $2, labels = $3::jsonb, energy_tag = $4 \
             WHERE id = $5 RETURNING {NODE_COLUMNS}"
        ))
        .bind(profile.region.as_deref())
        .bind(profile.runtime.as_str())
        .bind(serde_json::to_string(&profile.labels).map_err(json_err)?)
        .bind(profile.energy_tag.as_deref())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found("node", id))?;
        node_from_row(&row)
    }

    #[tracing::instrument(name = "store.set_reputation", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn set_reputation(
        &self,
        id: &NodeId,
        reputation: &bitsage_core::reputation::Reputation,
    ) -> Result<()> {
        let json = serde_json::to_string(reputation).map_err(json_err)?;
        let done = sqlx::query(
            "UPDATE nodes SET reputation_score = $1, reputation = $2::jsonb WHERE id = $3",
        )
        .bind(reputation.score.map(|v| v as i32))
        .bind(&json)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("node", id));
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.set_drain", level = "debug", skip_all, fields(db.system = "postgresql"))]
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
                sqlx::query_scalar("SELECT drain::text FROM nodes WHERE id = $1 FOR UPDATE")
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
                    "UPDATE node_maintenance SET ends_at = GREATEST(started_at, LEAST(ends_at, $1)) \
                     WHERE node_id = $2 AND started_at = $3",
                )
                .bind(now)
                .bind(id.as_str())
                .bind(p.since)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            if let Some(d) = drain {
                sqlx::query(
                    "INSERT INTO node_maintenance (node_id, started_at, ends_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (node_id, started_at) DO UPDATE SET ends_at = excluded.ends_at",
                )
                .bind(id.as_str())
                .bind(d.since)
                .bind(d.until)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            let row = sqlx::query(&format!(
                "UPDATE nodes SET drain = $1::jsonb WHERE id = $2 RETURNING {NODE_COLUMNS}"
            ))
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

    #[tracing::instrument(name = "store.maintenance_windows", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn maintenance_windows(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<TimeWindow>> {
        let rows: Vec<(Timestamp, Timestamp)> = sqlx::query_as(
            "SELECT started_at, ends_at FROM node_maintenance WHERE node_id = $1 \
             AND started_at < $2 AND ends_at > $3 ORDER BY started_at",
        )
        .bind(id.as_str())
        .bind(window.to)
        .bind(window.from)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(from, to)| TimeWindow { from, to })
            .collect())
    }

    #[tracing::instrument(name = "store.set_status_reason", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn set_status_reason(
        &self,
        id: &NodeId,
        status: NodeStatus,
        reason: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE nodes SET status_reason = $1 WHERE id = $2 AND status = $3 \
             AND status_reason <> $1",
        )
        .bind(reason)
        .bind(id.as_str())
        .bind(status.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(name = "store.status_history", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn status_history(&self, id: &NodeId) -> Result<Vec<StatusChange>> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, reason, at FROM node_status_history \
             WHERE node_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
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
                    at: r.try_get("at").map_err(db_err)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl TelemetryStore for PgStore {
    #[tracing::instrument(name = "store.append_heartbeat", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn append_heartbeat(&self, hb: &Heartbeat) -> Result<NodeStatus> {
        self.heartbeats.submit(hb.clone()).await
    }

    #[tracing::instrument(name = "store.gpu_collector", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn gpu_collector(&self, id: &NodeId) -> Result<Option<ReportedCollector>> {
        let row: Option<(Option<String>, Option<Timestamp>)> =
            sqlx::query_as("SELECT gpu_collector::text, gpu_collector_at FROM nodes WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        let Some((json, at)) = row else {
            return Ok(None);
        };
        reported_collector(json, at, BACKEND)
    }

    #[tracing::instrument(name = "store.last_seen", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn last_seen(&self, id: &NodeId) -> Result<Option<Timestamp>> {
        let at: Option<Option<Timestamp>> =
            sqlx::query_scalar("SELECT last_heartbeat_at FROM nodes WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(at.flatten())
    }

    #[tracing::instrument(name = "store.heartbeat_times", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn heartbeat_times(&self, id: &NodeId, window: TimeWindow) -> Result<Vec<Timestamp>> {
        sqlx::query_scalar(
            "SELECT at FROM heartbeats WHERE node_id = $1 AND at >= $2 AND at < $3 ORDER BY at",
        )
        .bind(id.as_str())
        .bind(window.from)
        .bind(window.to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    #[tracing::instrument(name = "store.heartbeat_coverage", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn heartbeat_coverage(
        &self,
        id: &NodeId,
        minutes: bitsage_core::node::MinuteRange,
    ) -> Result<bitsage_core::node::MinuteCoverage> {
        let (up, beats): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), SUM(beats)::bigint FROM heartbeat_minutes \
             WHERE node_id = $1 AND minute >= $2 AND minute <= $3",
        )
        .bind(id.as_str())
        .bind(minutes.first)
        .bind(minutes.last)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(bitsage_core::node::MinuteCoverage {
            minutes_up: up as u64,
            heartbeats: beats.unwrap_or(0) as u64,
        })
    }

    #[tracing::instrument(name = "store.record_node_fact", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn record_node_fact(
        &self,
        id: &NodeId,
        fact: bitsage_core::reputation::NodeFact,
        at: Timestamp,
        detail: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO node_facts (node_id, fact, at, detail) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(fact.as_str())
            .bind(at)
            .bind(detail)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    #[tracing::instrument(name = "store.node_facts", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn node_facts(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<bitsage_core::reputation::FactCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT fact, COUNT(*) FROM node_facts WHERE node_id = $1 AND at >= $2 AND at < $3 \
             GROUP BY fact",
        )
        .bind(id.as_str())
        .bind(window.from)
        .bind(window.to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(f, n)| Ok((bitsage_core::reputation::NodeFact::parse(&f)?, n as u64)))
            .collect()
    }

    #[tracing::instrument(name = "store.nodes_heartbeating", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn nodes_heartbeating(&self, minutes: bitsage_core::node::MinuteRange) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT node_id) FROM heartbeat_minutes WHERE minute >= $1 AND minute <= $2",
        )
        .bind(minutes.first)
        .bind(minutes.last)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n as u64)
    }

    #[tracing::instrument(name = "store.job_timings", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn job_timings(
        &self,
        filter: &bitsage_core::timing::TimingFilter,
    ) -> Result<Vec<bitsage_core::timing::JobTiming>> {
        let limit = filter.limit.min(bitsage_core::timing::MAX_TIMINGS);
        let rows = sqlx::query(
            "SELECT job_id::text AS job_id, node_id, kind, region, completed_at, queue_wait_us, \
             run_us, verify_us FROM job_timings WHERE completed_at >= $1 AND completed_at < $2 \
             AND ($3::text IS NULL OR node_id = $3) AND ($4::text IS NULL OR region = $4) \
             ORDER BY completed_at DESC, job_id DESC LIMIT $5",
        )
        .bind(filter.window.from)
        .bind(filter.window.to)
        .bind(filter.node.as_ref().map(|n| n.as_str()))
        .bind(filter.region.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
                    completed_at: r.try_get("completed_at").map_err(db_err)?,
                    queue_wait: d("queue_wait_us")?,
                    run: d("run_us")?,
                    verify: d("verify_us")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "store.append_gpu_samples", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn append_gpu_samples(&self, node: &NodeId, samples: &[GpuSample]) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let exists = sqlx::query("SELECT 1 FROM nodes WHERE id = $1")
                .bind(node.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_some();
            if !exists {
                return Err(Error::not_found("node", node));
            }
            for s in samples {
                sqlx::query(
                    "INSERT INTO gpu_samples (node_id, device_uuid, sampled_at, sample) \
                     VALUES ($1, $2, $3, $4::jsonb)",
                )
                .bind(node.as_str())
                .bind(&s.uuid)
                .bind(s.at)
                .bind(serde_json::to_string(s).map_err(json_err)?)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.latest_gpu_samples", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn latest_gpu_samples(&self, node: &NodeId) -> Result<Vec<GpuSample>> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (device_uuid) sample::text AS sample FROM gpu_samples \
             WHERE node_id = $1 ORDER BY device_uuid, sampled_at DESC, id DESC",
        )
        .bind(node.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(sample_from_row).collect()
    }

    #[tracing::instrument(name = "store.gpu_samples", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn gpu_samples(&self, node: &NodeId, window: TimeWindow) -> Result<Vec<GpuSample>> {
        let rows = sqlx::query(
            "SELECT sample::text AS sample FROM gpu_samples WHERE node_id = $1 \
             AND sampled_at >= $2 AND sampled_at < $3 ORDER BY sampled_at, device_uuid, id",
        )
        .bind(node.as_str())
        .bind(window.from)
        .bind(window.to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(sample_from_row).collect()
    }

    #[tracing::instrument(name = "store.apply_retention", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn apply_retention(
        &self,
        cut: &bitsage_core::retention::RetentionCutoffs,
    ) -> Result<bitsage_core::retention::RetentionReport> {
        use bitsage_core::retention::{roll_up, GpuMinute, RetentionReport};
        let mut tx = self.begin().await?;
        let result: Result<RetentionReport> = async {
            let mut report = RetentionReport::default();
            // One pass at a time across coordinators: two passes rolling up samples of one
            // device and minute could otherwise both insert its rollup row, one overwriting
            // the other ("bsretain" in ASCII).
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(0x6273_7265_7461_696e_i64)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            // Rows locked: two coordinators never roll up the same samples twice.
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, node_id, sample::text FROM gpu_samples WHERE sampled_at < $1 \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(cut.raw_gpu_samples)
            .bind(i64::from(bitsage_core::ports::RETENTION_BATCH))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            if !rows.is_empty() {
                let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
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
                        "SELECT rollup::text FROM gpu_sample_minutes \
                         WHERE node_id = $1 AND device_uuid = $2 AND minute = $3 FOR UPDATE",
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
                         VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (node_id, device_uuid, minute) \
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
                report.gpu_samples = sqlx::query("DELETE FROM gpu_samples WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            }
            // Everything else past its cutoff, by time, then the rollups by minute.
            let mut by_time = [0u64; 4];
            for (n, (sql, at)) in [
                ("DELETE FROM heartbeats WHERE at < $1", cut.raw_heartbeats),
                (
                    "DELETE FROM node_maintenance WHERE ends_at < $1",
                    cut.minute_rollups,
                ),
                (
                    "DELETE FROM job_timings WHERE completed_at < $1",
                    cut.job_timings,
                ),
                ("DELETE FROM node_facts WHERE at < $1", cut.node_facts),
            ]
            .into_iter()
            .enumerate()
            {
                by_time[n] = sqlx::query(sql)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            }
            let first = bitsage_core::node::minute_of(cut.minute_rollups);
            let mut minutes = 0;
            for sql in [
                "DELETE FROM heartbeat_minutes WHERE minute < $1",
                "DELETE FROM gpu_sample_minutes WHERE minute < $1",
            ] {
                minutes += sqlx::query(sql)
                    .bind(first)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            }
            report.heartbeats = by_time[0];
            report.rollups = minutes + by_time[1];
            report.job_timings = by_time[2];
            report.node_facts = by_time[3];
            Ok(report)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.gpu_minutes", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn gpu_minutes(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<bitsage_core::retention::GpuMinute>> {
        let r = bitsage_core::node::counted_minutes(window, window.from);
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT rollup::text FROM gpu_sample_minutes WHERE node_id = $1 AND minute >= $2 \
             AND minute <= $3 ORDER BY minute, device_uuid",
        )
        .bind(node.as_str())
        .bind(r.first)
        .bind(r.last)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|j| serde_json::from_str(j).map_err(json_err))
            .collect()
    }
}

#[async_trait]
impl JobQueue for PgStore {
    #[tracing::instrument(name = "store.enqueue_job", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn enqueue_job(&self, job: &NewJob) -> Result<JobRecord> {
        job.spec.kind.validate()?;
        let rec = new_job_record(job)?;
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            if let Some(f) = &job.funding {
                let mut account = lock_payer(&mut tx, &f.payer, job.submitted_at).await?;
                account.reserve(job.payment, &f.limit)?;
                account.updated_at = job.submitted_at;
                save_payer(&mut tx, &account).await?;
            }
            let done = sqlx::query(
                "INSERT INTO jobs (id, kind, spec, payment, status, attempts, max_attempts, \
             submitted_at, updated_at, payer) \
             VALUES ($1::uuid, $2, $3::jsonb, $4::numeric, $5, 0, $6, $7, $8, $9) \
             ON CONFLICT (id) DO NOTHING",
            )
            .bind(rec.spec.id.to_string())
            .bind(rec.spec.kind.name())
            .bind(serde_json::to_string(&rec.spec.kind).map_err(json_err)?)
            .bind(rec.payment.to_string())
            .bind(rec.status.as_str())
            .bind(
                i32::try_from(rec.max_attempts)
                    .map_err(|_| Error::invalid("job", "max_attempts too large"))?,
            )
            .bind(rec.submitted_at)
            .bind(rec.updated_at)
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
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.get_job", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>> {
        sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1::uuid"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(job_from_row)
        .transpose()
    }

    #[tracing::instrument(name = "store.list_jobs", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_jobs(&self, filter: &JobFilter, page: PageRequest) -> Result<Page<JobRecord>> {
        let total = self.count_jobs(filter).await?;
        let (where_sql, binds) = job_filter_sql(filter, |n| format!("${n}"));
        let n = binds.len();
        let list_sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs {where_sql} ORDER BY submitted_at, id \
             LIMIT ${} OFFSET ${}",
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
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(job_from_row).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total))
    }

    #[tracing::instrument(name = "store.count_jobs", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64> {
        let (where_sql, binds) = job_filter_sql(filter, |n| format!("${n}"));
        let sql = format!("SELECT COUNT(*) FROM jobs {where_sql}");
        let mut count = sqlx::query_scalar::<_, i64>(&sql);
        for b in &binds {
            count = count.bind(b);
        }
        let total = count.fetch_one(&self.pool).await.map_err(db_err)?;
        u64::try_from(total).map_err(|_| Error::backend(BACKEND, "negative count"))
    }

    #[tracing::instrument(name = "store.lease_job", level = "debug", skip_all, fields(db.system = "postgresql"))]
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
            let row = sqlx::query(&format!(
                "UPDATE jobs SET status = 'leased', attempts = attempts + 1, lease_id = $1::uuid, \
             lease_node = $2, leased_at = $3, lease_expires_at = $4, updated_at = $3 \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' \
                         ORDER BY submitted_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
            ))
            .bind(lease_id.to_string())
            .bind(node.as_str())
            .bind(now)
            .bind(expires_at)
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
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.sweep_expired_leases", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn sweep_expired_leases(&self, now: Timestamp) -> Result<ExpirySweep> {
        let mut tx = self.begin().await?;
        let result: Result<ExpirySweep> = async {
            let rows = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'leased' AND lease_expires_at < $1 \
                 ORDER BY submitted_at, id FOR UPDATE SKIP LOCKED"
            ))
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let mut sweep = ExpirySweep::default();
            let mut events = Vec::new();
            for row in &rows {
                let mut job = job_from_row(row)?;
                let before = job.status;
                let reason = expiry_error(job.lease.as_ref());
                settle_failure(&mut job, reason, now, &mut sweep);
                save_job(&mut tx, before, &job).await?;
                events.push(event::job_attempt_failed(&job));
            }
            append_events(&mut tx, &events, now).await?;
            Ok(sweep)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.complete_job", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn complete_job(
        &self,
        lease: &LeaseRef,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<JobRecord> {
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            let mut job = load_job_for_update(&mut tx, &lease.job_id).await?;
            let before = job.status;
            complete(&mut job, lease, result, now)?;
            save_job(&mut tx, before, &job).await?;
            append_events(&mut tx, &[event::job_completed(&job)], now).await?;
            Ok(job)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.fail_job", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn fail_job(&self, lease: &LeaseRef, reason: &str, now: Timestamp) -> Result<JobRecord> {
        let mut tx = self.begin().await?;
        let result: Result<JobRecord> = async {
            let mut job = load_job_for_update(&mut tx, &lease.job_id).await?;
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
        finish(tx, result).await
    }
}

#[async_trait]
impl ReceiptLedger for PgStore {
    #[tracing::instrument(name = "store.insert_receipt", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn insert_receipt(&self, receipt: &Receipt) -> Result<Inserted> {
        let mut tx = self.begin().await?;
        let result: Result<Inserted> = async {
            let inserted = insert_receipt_tx(&mut tx, receipt).await?;
            if inserted == Inserted::New {
                let e = event::receipt_issued(receipt);
                append_events(&mut tx, &[e], bitsage_core::time::now()).await?;
            }
            Ok(inserted)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.get_receipt", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn get_receipt(&self, id: &ReceiptId) -> Result<Option<Receipt>> {
        sqlx::query("SELECT receipt::text AS receipt FROM receipts WHERE id = $1::uuid")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(receipt_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_receipts", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_receipts(
        &self,
        filter: &ReceiptFilter,
        page: PageRequest,
    ) -> Result<Page<Receipt>> {
        let node = filter.node.as_ref().map(|n| n.to_string());
        let job = filter.job.as_ref().map(|j| j.to_string());
        let from = filter.window.map(|w| w.from);
        let to = filter.window.map(|w| w.to);
        const WHERE: &str = "WHERE ($1::text IS NULL OR node_id = $1) \
             AND ($2::text IS NULL OR kind = $2) \
             AND ($3::timestamptz IS NULL OR completed_at >= $3) \
             AND ($4::timestamptz IS NULL OR completed_at < $4) \
             AND ($5::text IS NULL OR job_id = $5::uuid)";
        let order = if filter.newest_first {
            "completed_at DESC, id DESC"
        } else {
            "completed_at, id"
        };
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM receipts {WHERE}"))
            .bind(&node)
            .bind(&filter.kind)
            .bind(from)
            .bind(to)
            .bind(&job)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        let rows = sqlx::query(&format!(
            "SELECT receipt::text AS receipt FROM receipts {WHERE} ORDER BY {order} \
             LIMIT $6 OFFSET $7"
        ))
        .bind(&node)
        .bind(&filter.kind)
        .bind(from)
        .bind(to)
        .bind(&job)
        .bind(i64::from(page.limit))
        .bind(to_i64(page.offset, "page offset")?)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(receipt_from_row).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total as u64))
    }

    #[tracing::instrument(name = "store.credit_earning", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn credit_earning(&self, entry: &EarningEntry) -> Result<Inserted> {
        entry.validate()?;
        let mut tx = self.begin().await?;
        let result = credit_tx(&mut tx, entry).await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.earnings_total", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn earnings_total(
        &self,
        node: &NodeId,
        window: Option<TimeWindow>,
    ) -> Result<EarningsTotal> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS entries, COALESCE(SUM(gross), 0)::text AS gross, \
             COALESCE(SUM(fee), 0)::text AS fee, COALESCE(SUM(net), 0)::text AS net \
             FROM earnings WHERE node_id = $1 \
             AND ($2::timestamptz IS NULL OR credited_at >= $2) \
             AND ($3::timestamptz IS NULL OR credited_at < $3)",
        )
        .bind(node.as_str())
        .bind(window.map(|w| w.from))
        .bind(window.map(|w| w.to))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        totals_from_row(&row)
    }

    #[tracing::instrument(name = "store.earnings_by_day", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn earnings_by_day(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<DailyEarnings>> {
        let rows = sqlx::query(
            "SELECT (credited_at AT TIME ZONE 'UTC')::date AS day, COUNT(*) AS entries, \
             SUM(gross)::text AS gross, SUM(fee)::text AS fee, SUM(net)::text AS net \
             FROM earnings WHERE node_id = $1 AND credited_at >= $2 AND credited_at < $3 \
             GROUP BY 1 ORDER BY 1",
        )
        .bind(node.as_str())
        .bind(window.from)
        .bind(window.to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(DailyEarnings {
                    day: r.try_get("day").map_err(db_err)?,
                    total: totals_from_row(r)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ChainEventStore for PgStore {
    #[tracing::instrument(name = "store.append_chain_events", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn append_chain_events(
        &self,
        indexer: &str,
        events: &[ChainEvent],
        cursor: &IndexerCursor,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let result: Result<u64> = async {
            let mut new = 0;
            let mut indexed = Vec::new();
            for e in events {
                let inserted = sqlx::query(
                    "INSERT INTO chain_events (block_hash, tx_hash, event_index, block_number, \
                     contract, keys, data) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) \
                     ON CONFLICT (block_hash, tx_hash, event_index) DO NOTHING",
                )
                .bind(&e.block_hash)
                .bind(&e.tx_hash)
                .bind(
                    i32::try_from(e.event_index)
                        .map_err(|_| Error::invalid("event index", "too large"))?,
                )
                .bind(to_i64(e.block_number, "block number")?)
                .bind(&e.contract)
                .bind(serde_json::to_string(&e.keys).map_err(json_err)?)
                .bind(serde_json::to_string(&e.data).map_err(json_err)?)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                if inserted == 1 {
                    indexed.push(event::chain_event_indexed(e));
                }
                new += inserted;
            }
            set_cursor(&mut tx, indexer, cursor).await?;
            append_events(&mut tx, &indexed, bitsage_core::time::now()).await?;
            Ok(new)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.chain_events", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn chain_events(&self, from_block: u64, to_block: u64) -> Result<Vec<ChainEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM chain_events WHERE block_number >= $1 \
             AND block_number <= $2 ORDER BY block_number, tx_hash, event_index"
        ))
        .bind(to_i64(from_block, "block number")?)
        .bind(to_i64(to_block.min(i64::MAX as u64), "block number")?)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(name = "store.rewind_chain", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn rewind_chain(&self, indexer: &str, to: &IndexerCursor) -> Result<u64> {
        let mut tx = self.begin().await?;
        let result: Result<u64> = async {
            let deleted = sqlx::query("DELETE FROM chain_events WHERE block_number > $1")
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
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.indexer_cursor", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn indexer_cursor(&self, indexer: &str) -> Result<Option<IndexerCursor>> {
        let row =
            sqlx::query("SELECT block_number, block_hash FROM indexer_cursors WHERE indexer = $1")
                .bind(indexer)
                .fetch_optional(&self.pool)
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
    tx: &mut Transaction<'_, Postgres>,
    indexer: &str,
    cursor: &IndexerCursor,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO indexer_cursors (indexer, block_number, block_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (indexer) DO UPDATE SET block_number = EXCLUDED.block_number, \
         block_hash = EXCLUDED.block_hash",
    )
    .bind(indexer)
    .bind(to_i64(cursor.block_number, "block number")?)
    .bind(&cursor.block_hash)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
