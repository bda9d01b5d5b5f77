//! Write your own proof store (and replay log) and prove it with BitSage's conformance suites.
//!
//! ```text
//! cargo run -p bitsage-store --example own_proof_store
//! ```
//!
//! A coordinator keeps accepted proofs in a [`ProofStore`] and remembers signed node
//! messages in a [`ReplayLog`]. `bitsage-store` ships backends for both (files, SQLite,
//! PostgreSQL, memory); an integrator with other storage writes their own and checks it against
//! the ports' contracts (see the "Contract" sections of [`ProofStore`] and [`ReplayLog`]) with
//! `bitsage_core::conformance::shared` (feature `conformance` of `bitsage-core`).
//!
//! The backend here, `ShardedDirStore`, keeps both in a directory with a layout of its own:
//!
//! ```text
//! <root>/proofs/<hash[0..2]>/<hash[2..]>   "BSP1", stored-at (i64 µs, big-endian), zstd(JSON envelope)
//! <root>/replay/<digest[0..2]>/<digest[2..]> keep-until (i64 µs, big-endian)
//! <root>/tmp/                              staging: files are written here, then published
//! ```
//!
//! Every record is written to `tmp/`, fsynced, then published with `link(2)`, which fails when
//! the name exists. That one atomic step gives both contracts their hard part: the first copy
//! of a proof wins, and of any number of concurrent `remember_message` calls with one digest
//! exactly one gets `true` — across threads and processes on the machine (or on a shared
//! filesystem whose `link` is atomic). The stored-at time lives in the record, not in the
//! file's mtime, so retention survives copies and restores.
//!
//! `main` runs both suites on fresh stores in a temporary directory and prints
//! `conformance: passed`; `cargo test -p bitsage-store --example own_proof_store` runs it.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bitsage_core::crypto::Hash32;
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::{Error, ProofStore, ReplayLog, Result, Timestamp};

/// The backend's name, in errors and in `proof_backend()`.
const NAME: &str = "sharded-dir";
/// The first bytes of a proof record (format 1).
const MAGIC: &[u8; 4] = b"BSP1";
/// zstd level: fast; most of an envelope is hex text.
const ZSTD_LEVEL: i32 = 3;

/// Proof envelopes and replay-log entries in a sharded, content-addressed directory.
#[derive(Debug, Clone)]
struct ShardedDirStore {
    root: PathBuf,
}

impl ShardedDirStore {
    /// A store in `root` (created if missing).
    fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["proofs", "replay", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).map_err(io)?;
        }
        Ok(Self { root })
    }

    /// `<root>/<kind>/<first two hex digits>/<the other 62>`.
    fn path(&self, kind: &str, hash: &Hash32) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(kind).join(&hex[..2]).join(&hex[2..])
    }

    /// Writes `bytes` to `dest` unless `dest` exists: `true` when this call created it.
    /// Durable when it returns (file and directory entries fsynced).
    fn publish(&self, dest: &Path, bytes: &[u8]) -> Result<bool> {
        if dest.exists() {
            return Ok(false);
        }
        let shard = dest.parent().expect("records live in a shard directory");
        std::fs::create_dir_all(shard).map_err(io)?;
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        // Atomic create-if-absent with the full content already in place.
        let created = match std::fs::hard_link(&tmp, dest) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        };
        std::fs::remove_file(&tmp).map_err(io)?;
        if created {
            sync_dir(shard)?;
        }
        Ok(created)
    }

    /// Deletes the records under `<root>/<kind>` whose leading timestamp (after `skip`
    /// bytes) is before `before`; returns how many.
    fn purge(&self, kind: &str, skip: usize, before: Timestamp) -> Result<u64> {
        let mut deleted = 0;
        for shard in std::fs::read_dir(self.root.join(kind)).map_err(io)? {
            let shard = shard.map_err(io)?.path();
            let deleted_before = deleted;
            for entry in std::fs::read_dir(&shard).map_err(io)? {
                let path = entry.map_err(io)?.path();
                let mut head = vec![0u8; skip + 8];
                match std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)) {
                    Ok(()) => {}
                    // Deleted meanwhile by another purge.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(e)),
                }
                if timestamp_at(&head[skip..])? < before {
                    match std::fs::remove_file(&path) {
                        Ok(()) => deleted += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(io(e)),
                    }
                }
            }
            if deleted > deleted_before {
                sync_dir(&shard)?;
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl ProofStore for ShardedDirStore {
    fn proof_backend(&self) -> &'static str {
        NAME
    }

    async fn put_proof(&self, envelope: &ProofEnvelope) -> Result<String> {
        let reference = format!("{NAME}:{}", envelope.proof_hash.to_hex());
        let dest = self.path("proofs", &envelope.proof_hash);
        let json = serde_json::to_vec(envelope).map_err(|e| Error::backend(NAME, e))?;
        let this = self.clone();
        blocking(move || {
            let mut record = MAGIC.to_vec();
            record.extend(bitsage_core::time::now().timestamp_micros().to_be_bytes());
            record.extend(zstd::encode_all(&json[..], ZSTD_LEVEL).map_err(io)?);
            // Already stored (now or by a concurrent put): the first copy stays.
            this.publish(&dest, &record).map(|_| ())
        })
        .await?;
        Ok(reference)
    }

    async fn get_proof(&self, hash: &Hash32) -> Result<Option<ProofEnvelope>> {
        let path = self.path("proofs", hash);
        let record = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if record.len() < 12 || &record[..4] != MAGIC {
            return Err(corrupt(&path, "not a proof record"));
        }
        let json = blocking(move || zstd::decode_all(&record[12..]).map_err(io)).await?;
        let envelope: ProofEnvelope =
            serde_json::from_slice(&json).map_err(|e| Error::backend(NAME, e))?;
        // Content addressing: a record under one name with another hash is damage, not data.
        if envelope.proof_hash != *hash {
            return Err(corrupt(&path, "the record holds another proof"));
        }
        Ok(Some(envelope))
    }

    async fn purge_proofs_before(&self, before: Timestamp) -> Result<u64> {
        let this = self.clone();
        blocking(move || this.purge("proofs", MAGIC.len(), before)).await
    }
}

#[async_trait]
impl ReplayLog for ShardedDirStore {
    async fn remember_message(&self, digest: &Hash32, keep_until: Timestamp) -> Result<bool> {
        let dest = self.path("replay", digest);
        let this = self.clone();
        blocking(move || this.publish(&dest, &keep_until.timestamp_micros().to_be_bytes())).await
    }

    // An entry is purged only once its `keep_until` passed, i.e. once the message's `sent_at`
    // can no longer pass the clock-skew check: a purge racing a new `remember_message` of the
    // same digest cannot let a replay through.
    async fn purge_messages(&self, before: Timestamp) -> Result<u64> {
        let this = self.clone();
        blocking(move || this.purge("replay", 0, before)).await
    }
}

/// Runs filesystem work off the async runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::backend(NAME, e))?
}

fn timestamp_at(bytes: &[u8]) -> Result<Timestamp> {
    let micros = i64::from_be_bytes(bytes[..8].try_into().expect("eight bytes"));
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::backend(NAME, format!("timestamp {micros} out of range")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

fn io(e: std::io::Error) -> Error {
    Error::backend(NAME, e)
}

fn corrupt(path: &Path, why: &str) -> Error {
    Error::backend(NAME, format!("{}: {why}", path.display()))
}

/// Runs both conformance suites, each check on a fresh store in its own directory under
/// `base`.
async fn run(base: &Path) -> Result<()> {
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ShardedDirStore::open(base.join(format!("store-{n}"))).expect("open a fresh store")
    };
    bitsage_core::conformance::shared::run_proof_store(|| {
        let store = fresh();
        async move { Arc::new(store) as bitsage_core::DynProofStore }
    })
    .await;
    println!("ProofStore: every check passed");
    bitsage_core::conformance::shared::run_replay_log(|| {
        let store = fresh();
        async move { Arc::new(store) as bitsage_core::DynReplayLog }
    })
    .await;
    println!("ReplayLog: every check passed");

    // What the suites leave behind, for a look at the layout.
    let example = ShardedDirStore::open(base.join("layout"))?;
    let envelope = bitsage_core::conformance::shared::sample_envelope(1, 1000);
    let reference = example.put_proof(&envelope).await?;
    let path = example.path("proofs", &envelope.proof_hash);
    println!(
        "stored {reference} as {} ({} bytes)",
        path.strip_prefix(base).unwrap_or(&path).display(),
        std::fs::metadata(&path).map_err(io)?.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // A real deployment opens its store once, at a configured path; the suites need empty
    // stores, so they get a temporary directory.
    let base = tempfile::tempdir()?;
    run(base.path()).await?;
    println!("conformance: passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        // The suites assert (panic) on any contract violation.
        super::main().expect("conformance suites");
    }
}
