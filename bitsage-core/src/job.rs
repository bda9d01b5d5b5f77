//! Jobs: what to prove, their queue state, leases and results.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::amount::TokenAmount;
use crate::crypto::Hash32;
use crate::ids::{JobId, LeaseId, NodeId};
use crate::time::Timestamp;
use crate::Error;

/// Largest Poseidon2 chain a job may ask for (2^20 permutations).
pub const MAX_CHAIN_LENGTH: u32 = 1 << 20;
/// Largest trace a job may ask for, in cells (columns × rows): 5 × 2^26, which covers the
/// longest Poseidon2 chain and keeps a wide-Fibonacci job within the same memory.
pub const MAX_TRACE_CELLS: u64 = 5 << 26;
/// The Mersenne-31 modulus: field elements are below it.
pub const M31_MODULUS: u32 = (1 << 31) - 1;

/// The computation a job asks for, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JobKind {
    /// `digest = P^length(seed)`: a chain of Poseidon2 permutations over M31 (width 16).
    Poseidon2Chain {
        /// The seed the initial state is derived from.
        seed: u64,
        /// Number of permutations, 1 ..= [`MAX_CHAIN_LENGTH`].
        length: u32,
    },
    /// The calibration AIR: `columns` Fibonacci columns of `2^log_rows` rows.
    WideFibonacci {
        /// Number of trace columns, 2 ..= 1024.
        columns: u32,
        /// log2 of the number of rows, 4 ..= 22.
        log_rows: u32,
        /// First element of every row's sequence (an M31 element).
        a: u32,
        /// Second element (an M31 element).
        b: u32,
    },
}

impl JobKind {
    /// The kind's name as used in JSON, receipts and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Poseidon2Chain { .. } => "poseidon2-chain",
            JobKind::WideFibonacci { .. } => "wide-fibonacci",
        }
    }

    /// Checks parameter ranges.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            JobKind::Poseidon2Chain { length, .. } => {
                if length == 0 || length > MAX_CHAIN_LENGTH {
                    return Err(Error::invalid(
                        "job parameters",
                        format!("length must be 1 ..= {MAX_CHAIN_LENGTH}"),
                    ));
                }
            }
            JobKind::WideFibonacci {
                columns,
                log_rows,
                a,
                b,
            } => {
                if !(2..=1024).contains(&columns) {
                    return Err(Error::invalid(
                        "job parameters",
                        "columns must be 2 ..= 1024",
                    ));
                }
                if !(4..=22).contains(&log_rows) {
                    return Err(Error::invalid(
                        "job parameters",
                        "log_rows must be 4 ..= 22",
                    ));
                }
                // The AIR adds one column for its activity selector.
                if (u64::from(columns) + 1) << log_rows > MAX_TRACE_CELLS {
                    return Err(Error::invalid(
                        "job parameters",
                        format!(
                            "(columns + 1) × 2^log_rows must be at most {MAX_TRACE_CELLS} cells"
                        ),
                    ));
                }
                if a >= M31_MODULUS || b >= M31_MODULUS {
                    return Err(Error::invalid(
                        "job parameters",
                        "a and b must be M31 elements (below 2^31 - 1)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A job as given to a prover: its id and what to compute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSpec {
    /// The job's id (bound into its proof, so a proof cannot be replayed for another job).
    pub id: JobId,
    /// What to compute.
    #[serde(flatten)]
    pub kind: JobKind,
}

impl JobSpec {
    /// A validated spec.
    pub fn new(id: JobId, kind: JobKind) -> Result<Self, Error> {
        kind.validate()?;
        Ok(Self { id, kind })
    }
}

/// Where a job is in its queue life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a node.
    Queued,
    /// Held by one node until its lease expires.
    Leased,
    /// Proven, verified and recorded.
    Completed,
    /// Given up on (retry limit reached).
    Failed,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Leased,
        JobStatus::Completed,
        JobStatus::Failed,
    ];

    /// The snake_case name used in JSON and storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Leased => "leased",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses [`JobStatus::as_str`].
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid("job status", format!("unknown status {s:?}")))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to put in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// What to compute.
    pub spec: JobSpec,
    /// What the client pays on completion, base units.
    pub payment: TokenAmount,
    /// How many leases the job may be given before it fails (≥ 1).
    pub max_attempts: u32,
    /// When it was submitted.
    pub submitted_at: Timestamp,
    /// Who pays and under which limit (reserved at enqueue); `None` only for jobs the
    /// deployment does not charge anyone for (tests, benchmarks of the queue).
    pub funding: Option<crate::funding::Funding>,
}

/// The current holder of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseInfo {
    /// Which lease.
    pub lease_id: LeaseId,
    /// The node holding it.
    pub node_id: NodeId,
    /// When it was granted.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub leased_at: Timestamp,
    /// When it runs out (the job is re-queued after).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub expires_at: Timestamp,
}

/// What a completed job produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResult {
    /// The public output (e.g. the chain digest), as the prover's envelope states it.
    pub output: String,
    /// The proof envelope's hash.
    pub proof_hash: Hash32,
    /// Where the proof envelope is kept (a path or URI).
    pub proof_ref: String,
    /// When the coordinator accepted it.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub completed_at: Timestamp,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// What to compute.
    pub spec: JobSpec,
    /// Payment on completion.
    pub payment: TokenAmount,
    /// Queue status.
    pub status: JobStatus,
    /// Leases granted so far.
    pub attempts: u32,
    /// Lease limit.
    pub max_attempts: u32,
    /// The holder while `Leased`.
    pub lease: Option<LeaseInfo>,
    /// The node that completed it and the result, once `Completed`.
    pub result: Option<JobResult>,
    /// The node that completed it.
    pub completed_by: Option<NodeId>,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// Submission time.
    pub submitted_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The paying account (its payment is reserved while the job is open).
    #[serde(default)]
    pub payer: Option<crate::WalletAddress>,
}

impl JobRecord {
    /// Checks that `lease` is this job's current, unexpired lease (`Conflict` otherwise).
    pub fn check_lease(&self, lease: &LeaseRef, now: Timestamp) -> Result<(), Error> {
        let current = match (&self.status, &self.lease) {
            (JobStatus::Leased, Some(current)) => current,
            _ => {
                return Err(Error::Conflict(format!(
                    "job {} is {}, not leased",
                    self.spec.id, self.status
                )))
            }
        };
        if current.lease_id != lease.lease_id || current.node_id != lease.node_id {
            return Err(Error::Conflict(format!(
                "job {} is not leased to {} under that lease",
                self.spec.id, lease.node_id
            )));
        }
        if now > current.expires_at {
            return Err(Error::Conflict(format!(
                "lease of job {} expired at {}",
                self.spec.id, current.expires_at
            )));
        }
        Ok(())
    }
}

/// A lease granted to a node: the job plus the proof of holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// The job to prove.
    pub spec: JobSpec,
    /// Payment on completion.
    pub payment: TokenAmount,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// The lease.
    pub lease: LeaseInfo,
}

impl Lease {
    /// The reference a node quotes to complete or fail this lease.
    pub fn reference(&self) -> LeaseRef {
        LeaseRef {
            job_id: self.spec.id,
            lease_id: self.lease.lease_id,
            node_id: self.lease.node_id.clone(),
        }
    }
}

/// Identifies one lease of one job held by one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The job.
    pub job_id: JobId,
    /// The lease.
    pub lease_id: LeaseId,
    /// The node claiming to hold it.
    pub node_id: NodeId,
}

/// A completion the coordinator verified, to settle in **one transaction** with
/// [`crate::JobStore::settle_completion`]: the job's result, the countersigned receipt and the
/// ledger credit (and their events) — all of it or none.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCompletion {
    /// The lease the node completed.
    pub lease: LeaseRef,
    /// The verified result.
    pub result: JobResult,
    /// The receipt, countersigned (its `job_id` is the lease's job).
    pub receipt: crate::receipt::Receipt,
    /// The ledger credit (its `job_id` is the lease's job).
    pub entry: crate::ledger::EarningEntry,
    /// How long the coordinator took to verify the proof (kept in the job's
    /// [`crate::timing::JobTiming`]).
    pub verify_time: std::time::Duration,
}

impl VerifiedCompletion {
    /// Checks that the receipt and the entry are about the leased job and node.
    pub fn check(&self) -> Result<(), Error> {
        let job = self.lease.job_id;
        if self.receipt.body.job_id != job || self.entry.job_id != job {
            return Err(Error::invalid(
                "completion",
                "the receipt and the ledger entry must name the leased job",
            ));
        }
        if self.receipt.body.node_id != self.lease.node_id
            || self.entry.node_id != self.lease.node_id
        {
            return Err(Error::invalid(
                "completion",
                "the receipt and the ledger entry must name the lease's node",
            ));
        }
        if self.receipt.body.proof_hash != self.result.proof_hash {
            return Err(Error::invalid(
                "completion",
                "the receipt's proof hash must be the result's",
            ));
        }
        Ok(())
    }

    /// Whether `job` was already completed by this completion (same node, same proof): a
    /// retry then only fills in what is missing.
    pub fn already_applied_to(&self, job: &JobRecord) -> bool {
        job.status == JobStatus::Completed
            && job.completed_by.as_ref() == Some(&self.lease.node_id)
            && job
                .result
                .as_ref()
                .is_some_and(|r| r.proof_hash == self.result.proof_hash)
    }
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs completed by or leased to this node.
    pub node: Option<NodeId>,
}

/// What happened to expired leases in one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpirySweep {
    /// Jobs put back in the queue.
    pub requeued: Vec<JobId>,
    /// Jobs that reached their retry limit and failed.
    pub failed: Vec<JobId>,
    /// Who held each expired lease (for the holders' reputation).
    pub holders: Vec<(JobId, NodeId)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_json_shape_and_validation() {
        let k = JobKind::Poseidon2Chain {
            seed: 7,
            length: 256,
        };
        let json = serde_json::to_value(&k).unwrap();
        assert_eq!(json["kind"], "poseidon2-chain");
        assert_eq!(json["length"], 256);
        assert!(serde_json::from_str::<JobKind>(
            r#"{"kind":"poseidon2-chain","seed":1,"length":2,"x":1}"#
        )
        .is_err());
        assert!(JobKind::Poseidon2Chain { seed: 0, length: 0 }
            .validate()
            .is_err());
        assert!(JobKind::WideFibonacci {
            columns: 1,
            log_rows: 10,
            a: 1,
            b: 1
        }
        .validate()
        .is_err());
        assert!(JobKind::WideFibonacci {
            columns: 8,
            log_rows: 10,
            a: M31_MODULUS,
            b: 1
        }
        .validate()
        .is_err());
        assert!(JobKind::WideFibonacci {
            columns: 8,
            log_rows: 10,
            a: 1,
            b: 1
        }
        .validate()
        .is_ok());
        let too_big = JobKind::WideFibonacci {
            columns: 1024,
            log_rows: 22,
            a: 1,
            b: 1,
        };
        assert!(too_big.validate().is_err(), "beyond the trace cap");
    }
}
