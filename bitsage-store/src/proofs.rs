//! [`ProofStore`] backends besides the SQL stores: [`FsProofStore`] (the embedded default, a
//! directory of zstd-compressed `<proof hash>.json.zst` files written durably) and [`InMemoryProofStore`].
//! [`crate::PgStore`] is the shared one for PostgreSQL deployments (a `proofs` table).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bitsage_core::crypto::Hash32;
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::{Error, ProofStore, Result, Timestamp};

const FS: &str = "filesystem";

fn io(e: std::io::Error) -> Error {
    Error::backend(FS, e)
}

/// Proof envelopes as files `<dir>/<proof hash>.json.zst` (zstd-compressed JSON; plain
/// `.json` files of earlier versions are still read and purged). A put writes a temporary
/// file, fsyncs it, renames it into place and fsyncs the directory before returning, so an
/// acknowledged proof survives a crash. Retention deletes files by modification time. One machine only: coordinators sharing PostgreSQL use
/// `PgStore` (feature `postgres`) as their proof store.
#[derive(Debug, Clone)]
pub struct FsProofStore {
    dir: PathBuf,
}

impl FsProofStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io)?;
        Ok(Self { dir })
    }

    fn file_name(hash: &Hash32) -> String {
        format!("{}.json.zst", hash.to_hex())
    }

    fn legacy_name(hash: &Hash32) -> String {
        format!("{}.json", hash.to_hex())
    }
}

/// zstd level for proof files: fast, and most of the size is hex text.
const PROOF_ZSTD_LEVEL: i32 = 3;

#[async_trait]
impl ProofStore for FsProofStore {
    fn proof_backend(&self) -> &'static str {
        FS
    }

    async fn put_proof(&self, envelope: &ProofEnvelope) -> Result<String> {
        let name = Self::file_name(&envelope.proof_hash);
        let reference = format!("proofs/{name}");
        if tokio::fs::try_exists(self.dir.join(&name))
            .await
            .map_err(io)?
        {
            return Ok(reference);
        }
        let json = serde_json::to_vec(envelope).map_err(|e| Error::backend(FS, e))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let bytes =
                zstd::encode_all(&json[..], PROOF_ZSTD_LEVEL).map_err(|e| Error::backend(FS, e))?;
            write_durably(&dir, &name, &bytes)
        })
        .await
        .map_err(|e| Error::backend(FS, e))??;
        Ok(reference)
    }

    async fn get_proof(&self, hash: &Hash32) -> Result<Option<ProofEnvelope>> {
        let json = match tokio::fs::read(self.dir.join(Self::file_name(hash))).await {
            Ok(bytes) => zstd::decode_all(&bytes[..]).map_err(|e| Error::backend(FS, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match tokio::fs::read(self.dir.join(Self::legacy_name(hash))).await {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| Error::backend(FS, e))
    }

    async fn purge_proofs_before(&self, before: Timestamp) -> Result<u64> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || purge_files_before(&dir, before))
            .await
            .map_err(|e| Error::backend(FS, e))?
    }
}

/// Deletes proof files (`*.json.zst`, `*.json`) last modified before `before`.
fn purge_files_before(dir: &Path, before: Timestamp) -> Result<u64> {
    let cutoff = std::time::SystemTime::from(before);
    let mut deleted = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !(name.ends_with(".json.zst") || name.ends_with(".json")) {
            continue;
        }
        let modified = match entry.metadata().and_then(|m| m.modified()) {
            Ok(m) => m,
            // Gone meanwhile (another purge): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        if modified < cutoff {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
    Ok(deleted)
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    // A unique temporary name: two concurrent puts of one proof must not share a file.
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Proof envelopes in process memory (embedding, demos, tests).
#[derive(Debug, Default)]
pub struct InMemoryProofStore {
    proofs: Mutex<HashMap<Hash32, (ProofEnvelope, Timestamp)>>,
}

impl InMemoryProofStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ProofStore for InMemoryProofStore {
    fn proof_backend(&self) -> &'static str {
        "memory"
    }

    async fn put_proof(&self, envelope: &ProofEnvelope) -> Result<String> {
        self.proofs
            .lock()
            .map_err(|_| Error::backend("memory", "proof store lock poisoned"))?
            .entry(envelope.proof_hash)
            .or_insert_with(|| (envelope.clone(), bitsage_core::time::now()));
        Ok(format!("memory:{}", envelope.proof_hash.to_hex()))
    }

    async fn get_proof(&self, hash: &Hash32) -> Result<Option<ProofEnvelope>> {
        Ok(self
            .proofs
            .lock()
            .map_err(|_| Error::backend("memory", "proof store lock poisoned"))?
            .get(hash)
            .map(|(e, _)| e.clone()))
    }

    async fn purge_proofs_before(&self, before: Timestamp) -> Result<u64> {
        let mut proofs = self
            .proofs
            .lock()
            .map_err(|_| Error::backend("memory", "proof store lock poisoned"))?;
        let n = proofs.len();
        proofs.retain(|_, (_, at)| *at >= before);
        Ok((n - proofs.len()) as u64)
    }
}
