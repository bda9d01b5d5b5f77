//! [`ProofArchive`]: where the coordinator keeps every proof envelope it accepted, so a
//! receipt's proof can be fetched and checked again later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bitsage_core::proof::ProofEnvelope;
use bitsage_core::{Error, JobId, Result};

/// Accepted proof envelopes, one per completed job.
///
/// The directory form writes `<dir>/<job id>.json` durably (temporary file, fsync, rename,
/// fsync of the directory) before the completion is acknowledged. The in-memory form is for
/// tests and demos.
#[derive(Debug, Clone)]
pub struct ProofArchive {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Dir(PathBuf),
    InMemory(Arc<Mutex<HashMap<JobId, ProofEnvelope>>>),
}

fn io(e: std::io::Error) -> Error {
    Error::backend("proof archive", e)
}

impl ProofArchive {
    /// An archive in `dir` (created if missing).
    pub fn dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io)?;
        Ok(Self {
            inner: Inner::Dir(dir),
        })
    }

    /// An archive in memory (tests, demos).
    pub fn in_memory() -> Self {
        Self {
            inner: Inner::InMemory(Arc::default()),
        }
    }

    /// Stores the envelope of `job`; returns its reference (the file name, or `memory:<id>`).
    /// Storing the same job again overwrites (a job completes once; the store decides).
    pub async fn put(&self, job: &JobId, envelope: &ProofEnvelope) -> Result<String> {
        match &self.inner {
            Inner::InMemory(m) => {
                m.lock()
                    .map_err(|_| Error::Conflict("proof archive poisoned".into()))?
                    .insert(*job, envelope.clone());
                Ok(format!("memory:{job}"))
            }
            Inner::Dir(dir) => {
                let bytes =
                    serde_json::to_vec(envelope).map_err(|e| Error::backend("proof archive", e))?;
                let dir = dir.clone();
                let name = format!("{job}.json");
                tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
                    .await
                    .map_err(|e| Error::backend("proof archive", e))??;
                Ok(format!("proofs/{job}.json"))
            }
        }
    }

    /// The envelope of `job`, if one was stored.
    pub async fn get(&self, job: &JobId) -> Result<Option<ProofEnvelope>> {
        match &self.inner {
            Inner::InMemory(m) => Ok(m
                .lock()
                .map_err(|_| Error::Conflict("proof archive poisoned".into()))?
                .get(job)
                .cloned()),
            Inner::Dir(dir) => {
                let path = dir.join(format!("{job}.json"));
                match tokio::fs::read(&path).await {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .map(Some)
                        .map_err(|e| Error::backend("proof archive", e)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(e)),
                }
            }
        }
    }
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}
