//! The node key: an ed25519 signing key kept in a file only its owner can read.
//!
//! File format: the 32-byte secret seed as 64 hex digits and a newline. The file is created
//! with mode `0600` (never wider, whatever the umask) and synced to disk before use; a file
//! that group or others can read, or whose content is not exactly such a key, is refused with
//! an error naming the file and what to do.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use bitsage_core::crypto::PublicKey;
use bitsage_core::NodeId;
use ed25519_dalek::SigningKey;

/// The default key file name inside the data directory.
pub const KEY_FILE_NAME: &str = "node.key";

/// Why a node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading, creating or writing the file failed.
    #[error("node key file {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file can be read by group or others.
    #[error(
        "node key file {} is readable by group or others (mode {mode:04o}); \
         run `chmod 600 {}` or remove it to create a new key",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file's content is not a key.
    #[error("node key file {} is malformed: {reason}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A node's ed25519 key and where it is kept. `Debug` never shows the secret.
#[derive(Clone)]
pub struct NodeKey {
    key: SigningKey,
    path: Option<PathBuf>,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("public_key", &self.public_key())
            .field("path", &self.path)
            .finish()
    }
}

impl NodeKey {
    /// A key held in memory only (for in-process agents and tests).
    pub fn from_signing_key(key: SigningKey) -> Self {
        Self { key, path: None }
    }

    /// A fresh random key, in memory only.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Loads the key at `path`, or creates one there when the file does not exist (parent
    /// directories are created with mode `0700`).
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        match Self::load(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                match Self::create(path) {
                    // Another process created it between our two calls: use theirs.
                    Err(KeyError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Self::load(path)
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Loads the key at `path`, refusing a file readable by group or others and malformed
    /// content.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(KeyError::Malformed {
                path: path.to_path_buf(),
                reason: "not a regular file".into(),
            });
        }
        check_permissions(path, &meta)?;
        // A key file is 65 bytes; refuse to read anything large into memory.
        if meta.len() > 1024 {
            return Err(KeyError::Malformed {
                path: path.to_path_buf(),
                reason: format!("{} bytes is far too long for a key", meta.len()),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                KeyError::Malformed {
                    path: path.to_path_buf(),
                    reason: "not text".into(),
                }
            } else {
                io(e)
            }
        })?;
        let seed = parse_seed(text.trim()).map_err(|reason| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
            path: Some(path.to_path_buf()),
        })
    }

    /// Creates a new random key at `path` (mode `0600`, synced); fails if the file exists.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(io)?;
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        let mut line = hex::encode(key.to_bytes());
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self {
            key,
            path: Some(path.to_path_buf()),
        })
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::of(&self.key)
    }

    /// The file the key was loaded from or written to (`None` for an in-memory key).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The node id used when the operator gives none: `node-` and the first 16 hex digits of
    /// the public key.
    pub fn default_node_id(&self) -> NodeId {
        default_node_id(&self.public_key())
    }
}

/// `node-` and the first 16 hex digits of `key`: a stable id derived from the node key.
pub fn default_node_id(key: &PublicKey) -> NodeId {
    let hex = key.to_hex();
    // Not external input: `node-` and 16 lowercase hex digits always form a valid id.
    NodeId::parse(&format!("node-{}", &hex[..16])).expect("node- + 16 hex digits is a valid id")
}

/// The default key file: `$BITSAGE_DATA_DIR/node.key`, else `~/.bitsage/node.key`; `None` when
/// neither variable is set.
pub fn default_key_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BITSAGE_DATA_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join(KEY_FILE_NAME));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".bitsage").join(KEY_FILE_NAME))
}

fn parse_seed(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 {
        return Err(format!(
            "expected 64 hex digits (an ed25519 secret key), found {} characters",
            s.chars().count()
        ));
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(s, &mut seed).map_err(|_| "not hex".to_string())?;
    Ok(seed)
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_node_id_is_derived_from_the_public_key() {
        let key = NodeKey::from_signing_key(SigningKey::from_bytes(&[1; 32]));
        let id = key.default_node_id();
        assert_eq!(id.as_str().len(), 21);
        assert!(id.as_str().starts_with("node-"));
        assert!(key.public_key().to_hex().starts_with(&id.as_str()[5..]));
        assert_eq!(id, default_node_id(&key.public_key()));
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let key = NodeKey::from_signing_key(SigningKey::from_bytes(&[0xab; 32]));
        let text = format!("{key:?}");
        assert!(!text.contains(&"ab".repeat(32)), "{text}");
        assert!(text.contains(&key.public_key().to_hex()));
    }
}
