//! Heartbeat ingest on SQLite: a batch of heartbeats from the group-commit queue
//! ([`crate::group_commit`]) stored in **one** transaction with multi-row statements, so a
//! batch costs a handful of round trips to SQLite's worker thread and one fsync, whatever its
//! size.
//!
//! Per batch round (each node at most once per round, see [`group_commit::rounds`]):
//! 1. claim the sequences: one `UPDATE nodes … FROM (VALUES …)` that moves each node's
//!    `last_heartbeat_seq` only where the new sequence is above it, `RETURNING` the nodes it
//!    moved and their status (the replay check, exact: a sequence is claimed at most once);
//! 2. for the heartbeats not claimed, one `SELECT` tells a replay from an unknown node;
//! 3. one multi-row `INSERT` each for the heartbeats, the per-minute rollup (upsert) and the
//!    GPU samples of the claimed ones.
//!
//! Every multi-row statement is cut into pieces whose row counts are powers of two
//! ([`pieces`]): the SQL text depends only on the row count, and sqlx keeps each distinct text
//! prepared on the connection, so arbitrary batch sizes would fill its statement cache with
//! hundreds of large statements (SQLite's memory grew ~15 MiB/min under load, and each new
//! size was parsed again). Powers of two up to [`ROWS`] bound the shapes to nine per statement
//! kind, prepared once and reused; a batch costs at most a few more round trips.

use std::collections::HashMap;

use bitsage_core::node::Heartbeat;
use bitsage_core::time::to_micros;
use bitsage_core::{Error, NodeStatus, Result};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::common::{batch_answers, encode_beats, replay_or_missing, EncodedBeat};
use crate::group_commit::{self, copy_error};
use crate::sqlite::{db_err, BACKEND};

/// Most rows per multi-row statement, a power of two (≤ 5 bound values each; SQLite allows
/// 32,766 bound values).
const ROWS: usize = 256;

/// `items` cut into consecutive pieces whose lengths are powers of two, each at most
/// [`ROWS`]: as many full pieces as fit, then the remainder's binary digits, largest first.
fn pieces<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= ROWS {
            ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        Some(piece)
    })
}

/// Stores `beats` in one transaction; one result per heartbeat, in order: the node's status
/// at commit, or why that heartbeat was refused (`Conflict` replay, `NotFound` node). A
/// failure of the transaction itself fails every heartbeat of the batch (none is stored).
pub(crate) async fn append(writer: &SqlitePool, beats: Vec<Heartbeat>) -> Vec<Result<NodeStatus>> {
    let (rows, mut results) = encode_beats(&beats, BACKEND);
    let outcome = store(writer, &beats, &rows, &mut results).await;
    if let Err(e) = outcome {
        for r in &rows {
            results[r.at] = Some(Err(copy_error(BACKEND, &e)));
        }
    }
    batch_answers(results, BACKEND)
}

async fn store(
    writer: &SqlitePool,
    beats: &[Heartbeat],
    rows: &[EncodedBeat],
    results: &mut [Option<Result<NodeStatus>>],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = rows.iter().map(|r| beats[r.at].node_id.as_str()).collect();
    let mut tx = writer.begin().await.map_err(db_err)?;
    let mut answers: Vec<(usize, Result<NodeStatus>)> = Vec::with_capacity(rows.len());
    for round in group_commit::rounds(&keys) {
        let round: Vec<&EncodedBeat> = round.iter().map(|&k| &rows[k]).collect();
        let claimed = claim(&mut tx, beats, &round).await?;
        let (stored, refused): (Vec<&EncodedBeat>, Vec<&EncodedBeat>) = round
            .iter()
            .partition(|r| claimed.contains_key(beats[r.at].node_id.as_str()));
        if !refused.is_empty() {
            let last = last_sequences(&mut tx, beats, &refused).await?;
            for r in &refused {
                let id = &beats[r.at].node_id;
                let err = replay_or_missing(id, r.seq, last.get(id.as_str()).copied());
                answers.push((r.at, Err(err)));
            }
        }
        if stored.is_empty() {
            continue;
        }
        insert_beats(&mut tx, beats, &stored).await?;
        insert_minutes(&mut tx, beats, &stored).await?;
        insert_samples(&mut tx, beats, &stored).await?;
        for r in &stored {
            answers.push((r.at, Ok(claimed[beats[r.at].node_id.as_str()])));
        }
    }
    tx.commit().await.map_err(db_err)?;
    for (at, answer) in answers {
        results[at] = Some(answer);
    }
    Ok(())
}

/// `(?, ?, …)` repeated `n` times with `width` placeholders each, comma-separated.
fn tuples(n: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; n].join(", ")
}

async fn claim(
    tx: &mut Transaction<'_, Sqlite>,
    beats: &[Heartbeat],
    round: &[&EncodedBeat],
) -> Result<HashMap<String, NodeStatus>> {
    let mut claimed = HashMap::with_capacity(round.len());
    for piece in pieces(round) {
        let sql = format!(
            "WITH v(id, seq, coll, at) AS (VALUES {}) \
             UPDATE nodes SET last_heartbeat_seq = v.seq, gpu_collector = v.coll, \
             gpu_collector_at = v.at, last_heartbeat_at = v.at FROM v \
             WHERE nodes.id = v.id \
             AND (nodes.last_heartbeat_seq IS NULL OR nodes.last_heartbeat_seq < v.seq) \
             RETURNING nodes.id, nodes.status",
            tuples(piece.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for r in piece {
            let hb = &beats[r.at];
            q = q
                .bind(hb.node_id.as_str())
                .bind(r.seq)
                .bind(r.collector.as_deref())
                .bind(to_micros(hb.at));
        }
        for row in q.fetch_all(&mut **tx).await.map_err(db_err)? {
            let id: String = row.try_get(0).map_err(db_err)?;
            let status: String = row.try_get(1).map_err(db_err)?;
            claimed.insert(id, NodeStatus::parse(&status)?);
        }
    }
    Ok(claimed)
}

async fn last_sequences(
    tx: &mut Transaction<'_, Sqlite>,
    beats: &[Heartbeat],
    refused: &[&EncodedBeat],
) -> Result<HashMap<String, Option<i64>>> {
    let mut last = HashMap::with_capacity(refused.len());
    for piece in pieces(refused) {
        let sql = format!(
            "SELECT id, last_heartbeat_seq FROM nodes WHERE id IN ({})",
            vec!["?"; piece.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in piece {
            q = q.bind(beats[r.at].node_id.as_str());
        }
        for row in q.fetch_all(&mut **tx).await.map_err(db_err)? {
            last.insert(
                row.try_get(0).map_err(db_err)?,
                row.try_get(1).map_err(db_err)?,
            );
        }
    }
    Ok(last)
}

async fn insert_beats(
    tx: &mut Transaction<'_, Sqlite>,
    beats: &[Heartbeat],
    stored: &[&EncodedBeat],
) -> Result<()> {
    for piece in pieces(stored) {
        let sql = format!(
            "INSERT INTO heartbeats (node_id, sequence, at, load_average_1m, agent_version) \
             VALUES {}",
            tuples(piece.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for r in piece {
            let hb = &beats[r.at];
            q = q
                .bind(hb.node_id.as_str())
                .bind(r.seq)
                .bind(to_micros(hb.at))
                .bind(hb.load_average_1m)
                .bind(hb.agent_version.as_str());
        }
        q.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

async fn insert_minutes(
    tx: &mut Transaction<'_, Sqlite>,
    beats: &[Heartbeat],
    stored: &[&EncodedBeat],
) -> Result<()> {
    for piece in pieces(stored) {
        let sql = format!(
            "INSERT INTO heartbeat_minutes (node_id, minute, beats) VALUES {} \
             ON CONFLICT (node_id, minute) DO UPDATE SET beats = beats + 1",
            vec!["(?, ?, 1)"; piece.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in piece {
            let hb = &beats[r.at];
            q = q
                .bind(hb.node_id.as_str())
                .bind(bitsage_core::node::minute_of(hb.at));
        }
        q.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

async fn insert_samples(
    tx: &mut Transaction<'_, Sqlite>,
    beats: &[Heartbeat],
    stored: &[&EncodedBeat],
) -> Result<()> {
    let mut samples = Vec::new();
    for r in stored {
        let hb = &beats[r.at];
        for s in &hb.gpu_samples {
            let body = serde_json::to_string(s)
                .map_err(|e| Error::backend(BACKEND, format!("encoding a GPU sample: {e}")))?;
            samples.push((hb.node_id.as_str(), s.uuid.as_str(), to_micros(s.at), body));
        }
    }
    for piece in pieces(&samples) {
        let sql = format!(
            "INSERT INTO gpu_samples (node_id, device_uuid, sampled_at, sample) VALUES {}",
            tuples(piece.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (node, uuid, at, body) in piece {
            q = q.bind(*node).bind(*uuid).bind(*at).bind(body.as_str());
        }
        q.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_powers_of_two_in_order_and_cover_everything() {
        for n in [0usize, 1, 2, 3, 7, 255, 256, 257, 500, 1_000, 2_048] {
            let items: Vec<usize> = (0..n).collect();
            let cut: Vec<&[usize]> = pieces(&items).collect();
            assert!(cut
                .iter()
                .all(|p| p.len().is_power_of_two() && p.len() <= ROWS));
            assert_eq!(cut.concat(), items, "{n}");
            assert!(cut.len() <= n / ROWS + ROWS.ilog2() as usize + 1, "{n}");
        }
        let lens: Vec<usize> = pieces(&[0u8; 300]).map(<[u8]>::len).collect();
        assert_eq!(lens, [256, 32, 8, 4]);
    }
}
