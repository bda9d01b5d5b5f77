//! Heartbeat ingest on PostgreSQL: a batch of heartbeats from the group-commit queue
//! ([`crate::group_commit`]) stored by **one** statement per batch round (each node at most
//! once per round, see [`group_commit::rounds`]), all rounds in one transaction.
//!
//! The statement takes the batch as arrays (`UNNEST`): it locks the batch's node rows in id
//! order (so two coordinators' batches over the same nodes cannot deadlock), claims each
//! sequence where it is above the node's last one (`RETURNING` the node's status: the replay
//! check, exact), and inserts the claimed heartbeats, their per-minute rollup and their GPU
//! samples as data-modifying CTEs of the same statement.

use std::collections::HashMap;

use bitsage_core::node::Heartbeat;
use bitsage_core::{Error, NodeStatus, Result, Timestamp};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::common::{batch_answers, encode_beats, replay_or_missing, EncodedBeat};
use crate::group_commit::{self, copy_error};
use crate::pg::{db_err, BACKEND};

/// How often a batch that lost a deadlock or serialization race is tried again.
const RETRIES: usize = 3;

/// Stores `beats` in one transaction; one result per heartbeat, in order: the node's status
/// at commit, or why that heartbeat was refused (`Conflict` replay, `NotFound` node). A
/// failure of the transaction itself fails every heartbeat of the batch (none is stored).
pub(crate) async fn append(pool: &PgPool, beats: Vec<Heartbeat>) -> Vec<Result<NodeStatus>> {
    let (rows, mut results) = encode_beats(&beats, BACKEND);
    let mut attempt = 0;
    loop {
        match store(pool, &beats, &rows).await {
            Ok(answers) => {
                for (at, answer) in answers {
                    results[at] = Some(answer);
                }
                break;
            }
            Err(e) if attempt < RETRIES && retryable(&e) => attempt += 1,
            Err(e) => {
                for r in &rows {
                    results[r.at] = Some(Err(copy_error(BACKEND, &e)));
                }
                break;
            }
        }
    }
    batch_answers(results, BACKEND)
}

/// A deadlock (40P01) or serialization failure (40001): the whole batch can be tried again.
fn retryable(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("40P01") || text.contains("40001") || text.contains("deadlock detected")
}

async fn store(
    pool: &PgPool,
    beats: &[Heartbeat],
    rows: &[EncodedBeat],
) -> Result<Vec<(usize, Result<NodeStatus>)>> {
    let mut answers = Vec::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(answers);
    }
    let keys: Vec<&str> = rows.iter().map(|r| beats[r.at].node_id.as_str()).collect();
    let mut tx = pool.begin().await.map_err(db_err)?;
    for round in group_commit::rounds(&keys) {
        let round: Vec<&EncodedBeat> = round.iter().map(|&k| &rows[k]).collect();
        let claimed = claim_and_insert(&mut tx, beats, &round).await?;
        let refused: Vec<&EncodedBeat> = round
            .iter()
            .copied()
            .filter(|r| !claimed.contains_key(beats[r.at].node_id.as_str()))
            .collect();
        let last = if refused.is_empty() {
            HashMap::new()
        } else {
            last_sequences(&mut tx, beats, &refused).await?
        };
        for r in round {
            let id = &beats[r.at].node_id;
            let answer = match claimed.get(id.as_str()) {
                Some(status) => Ok(*status),
                None => Err(replay_or_missing(id, r.seq, last.get(id.as_str()).copied())),
            };
            answers.push((r.at, answer));
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(answers)
}

async fn claim_and_insert(
    tx: &mut Transaction<'_, Postgres>,
    beats: &[Heartbeat],
    round: &[&EncodedBeat],
) -> Result<HashMap<String, NodeStatus>> {
    let n = round.len();
    let mut ids = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut ats: Vec<Timestamp> = Vec::with_capacity(n);
    let mut loads = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut collectors = Vec::with_capacity(n);
    let mut minutes = Vec::with_capacity(n);
    let (mut s_nodes, mut s_uuids, mut s_ats, mut s_bodies) =
        (Vec::new(), Vec::new(), Vec::<Timestamp>::new(), Vec::new());
    for r in round {
        let hb = &beats[r.at];
        ids.push(hb.node_id.as_str());
        seqs.push(r.seq);
        ats.push(hb.at);
        loads.push(hb.load_average_1m);
        versions.push(hb.agent_version.as_str());
        collectors.push(r.collector.as_deref());
        minutes.push(bitsage_core::node::minute_of(hb.at));
        for s in &hb.gpu_samples {
            s_nodes.push(hb.node_id.as_str());
            s_uuids.push(s.uuid.as_str());
            s_ats.push(s.at);
            s_bodies.push(
                serde_json::to_string(s)
                    .map_err(|e| Error::backend(BACKEND, format!("encoding a GPU sample: {e}")))?,
            );
        }
    }
    let moved = sqlx::query(
        "WITH v AS (SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], \
         $4::float8[], $5::text[], $6::text[], $7::int8[]) \
         AS v(id, seq, at, load, version, coll, minute)), \
         locked AS (SELECT n.id FROM nodes n WHERE n.id = ANY($1::text[]) \
         ORDER BY n.id FOR UPDATE), \
         claimed AS (UPDATE nodes n SET last_heartbeat_seq = v.seq, \
         gpu_collector = v.coll::jsonb, gpu_collector_at = v.at, last_heartbeat_at = v.at \
         FROM v, locked l WHERE n.id = v.id AND l.id = v.id \
         AND (n.last_heartbeat_seq IS NULL OR n.last_heartbeat_seq < v.seq) \
         RETURNING n.id, n.status), \
         beat AS (INSERT INTO heartbeats (node_id, sequence, at, load_average_1m, agent_version) \
         SELECT v.id, v.seq, v.at, v.load, v.version FROM v JOIN claimed c ON c.id = v.id \
         RETURNING 1), \
         rollup AS (INSERT INTO heartbeat_minutes (node_id, minute, beats) \
         SELECT v.id, v.minute, 1 FROM v JOIN claimed c ON c.id = v.id \
         ON CONFLICT (node_id, minute) DO UPDATE SET beats = heartbeat_minutes.beats + 1 \
         RETURNING 1), \
         samples AS (INSERT INTO gpu_samples (node_id, device_uuid, sampled_at, sample) \
         SELECT s.node, s.uuid, s.at, s.body::jsonb FROM \
         UNNEST($8::text[], $9::text[], $10::timestamptz[], $11::text[]) AS s(node, uuid, at, body) \
         JOIN claimed c ON c.id = s.node RETURNING 1) \
         SELECT id, status FROM claimed",
    )
    .bind(&ids)
    .bind(&seqs)
    .bind(&ats)
    .bind(&loads)
    .bind(&versions)
    .bind(&collectors)
    .bind(&minutes)
    .bind(&s_nodes)
    .bind(&s_uuids)
    .bind(&s_ats)
    .bind(&s_bodies)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let mut claimed = HashMap::with_capacity(moved.len());
    for row in moved {
        let id: String = row.try_get(0).map_err(db_err)?;
        let status: String = row.try_get(1).map_err(db_err)?;
        claimed.insert(id, NodeStatus::parse(&status)?);
    }
    Ok(claimed)
}

async fn last_sequences(
    tx: &mut Transaction<'_, Postgres>,
    beats: &[Heartbeat],
    refused: &[&EncodedBeat],
) -> Result<HashMap<String, Option<i64>>> {
    let ids: Vec<&str> = refused
        .iter()
        .map(|r| beats[r.at].node_id.as_str())
        .collect();
    let found = sqlx::query("SELECT id, last_heartbeat_seq FROM nodes WHERE id = ANY($1::text[])")
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    found
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(db_err)?,
                row.try_get(1).map_err(db_err)?,
            ))
        })
        .collect()
}
