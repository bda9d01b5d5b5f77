//! The one error type of `bitsage-core`, shared by every port.

/// A boxed error from a backend library (sqlx, NVML, JSON-RPC, stwo, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the core and by every port.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the domain and of every port.
///
/// Variants are meaning-based, so a caller (e.g. the HTTP layer) can map them to a status code
/// without looking at backend details; [`Error::Backend`] carries the backend's own error for
/// logs and is never shown to clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation (a bad address, amount, identifier, parameter, ...).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being validated, e.g. `"wallet address"`.
        what: &'static str,
        /// Why it was rejected, in words a user can act on.
        reason: String,
    },
    /// A record that was asked for does not exist.
    #[error("{what} not found: {id}")]
    NotFound {
        /// The kind of record, e.g. `"node"`.
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// A record with this identity already exists (and differs, where idempotency applies).
    #[error("{what} already exists: {id}")]
    AlreadyExists {
        /// The kind of record.
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The operation does not apply to the record's current state (e.g. a stale lease).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The node lifecycle does not allow this event in this state.
    #[error("illegal lifecycle transition: {event} while {from}")]
    IllegalTransition {
        /// The state the node was in.
        from: crate::lifecycle::NodeStatus,
        /// The event's name.
        event: &'static str,
    },
    /// A data source cannot answer (NVML missing, RPC down, ...). Never replaced by made-up data.
    #[error("{source_name} unavailable: {reason}")]
    Unavailable {
        /// Which source, e.g. `"nvml"`.
        source_name: String,
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// The payer cannot cover a payment (its escrow or local credit, less what is reserved).
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// Exact arithmetic would overflow (amounts are u256).
    #[error("arithmetic overflow: {0}")]
    Overflow(&'static str),
    /// A signature did not verify, or a key is malformed.
    #[error("signature rejected: {0}")]
    Signature(String),
    /// A proof failed verification or violates the verifier's policy.
    #[error("proof rejected: {0}")]
    ProofRejected(String),
    /// A backend failed; `source` is for logs only.
    #[error("{backend} backend error: {source}")]
    Backend {
        /// The backend's name, e.g. `"sqlite"`.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }
}
