//! Wire types of the HTTP API, shared by the coordinator (server) and the agent's typed client.
//!
//! Conventions: JSON in snake_case; token amounts as base-unit decimal strings, each next to a
//! `*_formatted` string for people (`1,234.5 SAGE`); times in RFC 3339 UTC; request bodies
//! reject unknown fields.
//!
//! Node messages are signed with the node's ed25519 key over *canonical bytes*
//! ([`CanonicalWriter`], length-prefixed fields after a domain tag such as
//! [`REGISTER_DOMAIN`]), never over the JSON text, so whitespace or field order on the wire
//! does not matter and a signature for one message kind is never valid for another.

use bitsage_core::attestation::{AttestationSummary, RegistrationAttestation};
use bitsage_core::crypto::{sign, CanonicalWriter, Hash32, PublicKey, SignatureBytes};
use bitsage_core::gpu::{GpuCollectorStatus, GpuSample, ReportedCollector};
use bitsage_core::job::{JobKind, JobRecord, JobResult, Lease, LeaseInfo, LeaseRef};
use bitsage_core::ledger::{DailyEarnings, EarningsTotal};
use bitsage_core::node::{HardwareReport, NodeRecord, StatusChange};
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::receipt::{Receipt, ReceiptBody};
use bitsage_core::{
    Error, JobId, JobSpec, JobStatus, LeaseId, NodeId, NodeStatus, Timestamp, TokenAmount,
    WalletAddress,
};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// Domain tag of a registration's canonical bytes.
pub const REGISTER_DOMAIN: &str = "bitsage/register/v1";
/// Domain tag of a heartbeat's canonical bytes.
pub const HEARTBEAT_DOMAIN: &str = "bitsage/heartbeat/v1";

/// Longest accepted agent version string.
pub const MAX_AGENT_VERSION_LEN: usize = 64;

pub use bitsage_core::page::Page;

// ---------------------------------------------------------------- errors

/// The body of every error response: `{"error":{"type":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, in a machine-readable `type` and a human-readable `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable snake_case category, e.g. `invalid_request`, `not_found`, `unauthorized`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened, for people; never internal error text.
    pub message: String,
}

// ---------------------------------------------------------------- canonical encoding helpers

fn time_field(w: &mut CanonicalWriter, t: &Timestamp) {
    w.field(&t.timestamp_micros().to_be_bytes());
}

fn json_field<T: Serialize>(w: &mut CanonicalWriter, value: &T) {
    // These values (hardware reports, GPU samples) hold no maps with non-string keys, so
    // serialisation cannot fail; an empty field would only make the signature not verify.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    w.field(&bytes);
}

fn option_f64_field(w: &mut CanonicalWriter, v: Option<f64>) {
    match v {
        None => w.field(&[0u8]),
        Some(x) => {
            let mut b = [0u8; 9];
            b[0] = 1;
            b[1..].copy_from_slice(&x.to_bits().to_be_bytes());
            w.field(&b)
        }
    };
}

// ---------------------------------------------------------------- register

/// `POST /api/nodes/register`: a node introduces itself and proves it holds its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The node's id.
    pub node_id: NodeId,
    /// The node's ed25519 public key; it signs this request and every later message.
    pub public_key: PublicKey,
    /// The wallet the node earns for.
    pub wallet: WalletAddress,
    /// The node's hardware.
    pub hardware: HardwareReport,
    /// The agent's version string (1 to [`MAX_AGENT_VERSION_LEN`] characters).
    pub agent_version: String,
    /// When the agent sent it (must lie within the server's clock-skew window).
    pub sent_at: Timestamp,
    /// ed25519 signature over [`RegisterRequest::canonical_bytes`] by `public_key`.
    pub signature: SignatureBytes,
}

impl RegisterRequest {
    /// Builds a request signed with `key` (its public half becomes `public_key`).
    pub fn signed(
        key: &SigningKey,
        node_id: NodeId,
        wallet: WalletAddress,
        hardware: HardwareReport,
        agent_version: impl Into<String>,
        sent_at: Timestamp,
    ) -> Self {
        let mut req = Self {
            node_id,
            public_key: PublicKey::of(key),
            wallet,
            hardware,
            agent_version: agent_version.into(),
            sent_at,
            signature: SignatureBytes([0; 64]),
        };
        req.signature = sign(key, &req.canonical_bytes());
        req
    }

    /// The bytes the signature covers (every field but the signature, after
    /// [`REGISTER_DOMAIN`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(REGISTER_DOMAIN);
        w.field(self.node_id.as_str().as_bytes())
            .field(&self.public_key.to_bytes())
            .field(self.wallet.as_bytes());
        json_field(&mut w, &self.hardware);
        w.field(self.agent_version.as_bytes());
        time_field(&mut w, &self.sent_at);
        w.finish()
    }

    /// Checks the signature against the request's own `public_key` (proof of possession).
    pub fn verify(&self) -> Result<(), Error> {
        self.public_key
            .verify(&self.canonical_bytes(), &self.signature)
    }
}

/// The answer to a registration (201 when created, 200 when already registered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The node as stored.
    pub node: NodeView,
    /// How often the node must send a heartbeat, seconds.
    pub heartbeat_interval_secs: u64,
    /// The coordinator's public key (it countersigns receipts).
    pub coordinator_public_key: PublicKey,
}

// ---------------------------------------------------------------- heartbeat

/// `POST /api/nodes/heartbeat`: a node says it is alive, signed with its registered key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The node's id.
    pub node_id: NodeId,
    /// Strictly increasing per node (replay protection).
    pub sequence: u64,
    /// When the agent sent it (must lie within the server's clock-skew window).
    pub sent_at: Timestamp,
    /// The host's 1-minute load average, where the agent can read it.
    #[serde(default)]
    pub load_average_1m: Option<f64>,
    /// The agent's version string.
    pub agent_version: String,
    /// GPU readings since the last heartbeat (empty on a GPU-less host).
    #[serde(default)]
    pub gpu_samples: Vec<GpuSample>,
    /// The health of the agent's GPU collector (exported by the coordinator's `/metrics` as
    /// `bitsage_gpu_collector_*`).
    #[serde(default)]
    pub gpu_collector: Option<GpuCollectorStatus>,
    /// ed25519 signature over [`HeartbeatRequest::canonical_bytes`] by the node's key.
    pub signature: SignatureBytes,
}

impl HeartbeatRequest {
    /// Builds a heartbeat signed with `key` (without a collector status; for one, use
    /// [`HeartbeatRequest::unsigned`], [`HeartbeatRequest::with_gpu_collector`] and
    /// [`HeartbeatRequest::sign`]).
    pub fn signed(
        key: &SigningKey,
        node_id: NodeId,
        sequence: u64,
        sent_at: Timestamp,
        load_average_1m: Option<f64>,
        agent_version: impl Into<String>,
        gpu_samples: Vec<GpuSample>,
    ) -> Self {
        Self::unsigned(
            node_id,
            sequence,
            sent_at,
            load_average_1m,
            agent_version,
            gpu_samples,
        )
        .sign(key)
    }

    /// A heartbeat with an all-zero signature: call [`HeartbeatRequest::sign`] last.
    pub fn unsigned(
        node_id: NodeId,
        sequence: u64,
        sent_at: Timestamp,
        load_average_1m: Option<f64>,
        agent_version: impl Into<String>,
        gpu_samples: Vec<GpuSample>,
    ) -> Self {
        Self {
            node_id,
            sequence,
            sent_at,
            load_average_1m,
            agent_version: agent_version.into(),
            gpu_samples,
            gpu_collector: None,
            signature: SignatureBytes([0; 64]),
        }
    }

    /// Sets the collector's health (sign afterwards).
    pub fn with_gpu_collector(mut self, status: GpuCollectorStatus) -> Self {
        self.gpu_collector = Some(status);
        self
    }

    /// Signs every field with `key`.
    pub fn sign(mut self, key: &SigningKey) -> Self {
        self.signature = sign(key, &self.canonical_bytes());
        self
    }

    /// The bytes the signature covers (every field but the signature, after
    /// [`HEARTBEAT_DOMAIN`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(HEARTBEAT_DOMAIN);
        w.field(self.node_id.as_str().as_bytes())
            .field(&self.sequence.to_be_bytes());
        time_field(&mut w, &self.sent_at);
        option_f64_field(&mut w, self.load_average_1m);
        w.field(self.agent_version.as_bytes());
        json_field(&mut w, &self.gpu_samples);
        json_field(&mut w, &self.gpu_collector);
        w.finish()
    }

    /// Checks the signature against `key` (the node's registered key).
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        key.verify(&self.canonical_bytes(), &self.signature)
    }
}

/// The answer to an accepted heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The node's status after this heartbeat.
    pub status: NodeStatus,
    /// How often the node must send a heartbeat, seconds.
    pub heartbeat_interval_secs: u64,
}

// ---------------------------------------------------------------- jobs (clients)

/// Largest `max_attempts` a client may ask for.
pub const MAX_JOB_ATTEMPTS: u32 = 10;

/// `POST /api/jobs`: a client submits a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJobRequest {
    /// What to compute (`{"kind":"poseidon2-chain","seed":…,"length":…}` or
    /// `{"kind":"wide-fibonacci","columns":…,"log_rows":…,"a":…,"b":…}`).
    pub job: JobKind,
    /// What the client pays on completion, base units (decimal string).
    pub payment: TokenAmount,
    /// How many leases the job may be given before it fails (1 ..= [`MAX_JOB_ATTEMPTS`],
    /// default 3).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job's id.
    pub id: JobId,
    /// What to compute.
    pub job: JobKind,
    /// Queue status.
    pub status: JobStatus,
    /// Payment on completion, base units.
    pub payment: TokenAmount,
    /// `payment` for people.
    pub payment_formatted: String,
    /// Leases granted so far.
    pub attempts: u32,
    /// Lease limit.
    pub max_attempts: u32,
    /// The current lease while `leased`.
    pub lease: Option<LeaseInfo>,
    /// The result once `completed`.
    pub result: Option<JobResult>,
    /// The node that completed it.
    pub completed_by: Option<NodeId>,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// Submission time.
    pub submitted_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        Self {
            id: j.spec.id,
            job: j.spec.kind,
            status: j.status,
            payment_formatted: j.payment.format_sage(),
            payment: j.payment,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            lease: j.lease,
            result: j.result,
            completed_by: j.completed_by,
            last_error: j.last_error,
            submitted_at: j.submitted_at,
            updated_at: j.updated_at,
        }
    }
}

// ---------------------------------------------------------------- jobs (agents)

/// Domain tag of a lease request's canonical bytes.
pub const LEASE_DOMAIN: &str = "bitsage/lease/v1";
/// Domain tag of a completion's canonical bytes.
pub const COMPLETE_DOMAIN: &str = "bitsage/complete/v1";
/// Domain tag of a failure/release report's canonical bytes.
pub const FAIL_DOMAIN: &str = "bitsage/fail/v1";
/// Domain tag of a probe ticket (signed by the coordinator).
pub const PROBE_DOMAIN: &str = "bitsage/probe/v1";

/// Longest accepted failure reason.
pub const MAX_FAIL_REASON_LEN: usize = 512;

/// `POST /api/jobs/lease`: a node asks for work, signed with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The node.
    pub node_id: NodeId,
    /// A random value; with `sent_at` it makes each request unique (replay protection).
    pub nonce: u64,
    /// When the agent sent it (must lie within the server's clock-skew window).
    pub sent_at: Timestamp,
    /// ed25519 signature over [`LeaseRequest::canonical_bytes`] by the node's key.
    pub signature: SignatureBytes,
}

impl LeaseRequest {
    /// Builds a lease request signed with `key`.
    pub fn signed(key: &SigningKey, node_id: NodeId, nonce: u64, sent_at: Timestamp) -> Self {
        let mut req = Self {
            node_id,
            nonce,
            sent_at,
            signature: SignatureBytes([0; 64]),
        };
        req.signature = sign(key, &req.canonical_bytes());
        req
    }

    /// The bytes the signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(LEASE_DOMAIN);
        w.field(self.node_id.as_str().as_bytes())
            .field(&self.nonce.to_be_bytes());
        time_field(&mut w, &self.sent_at);
        w.finish()
    }

    /// Checks the signature against `key` (the node's registered key).
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        key.verify(&self.canonical_bytes(), &self.signature)
    }
}

/// A probe: a small job the coordinator gives a `pending` node outside the queue. The ticket is
/// the coordinator's own signature over the probe, so any coordinator sharing its key can check
/// a completed probe without remembering it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTicket {
    /// The node the probe is for.
    pub node_id: NodeId,
    /// The probe job.
    pub spec: JobSpec,
    /// The probe must be completed before this time.
    pub expires_at: Timestamp,
    /// The coordinator's signature over [`ProbeTicket::canonical_bytes`].
    pub coordinator_signature: SignatureBytes,
}

impl ProbeTicket {
    /// A ticket signed by the coordinator's key.
    pub fn signed(
        coordinator: &SigningKey,
        node_id: NodeId,
        spec: JobSpec,
        expires_at: Timestamp,
    ) -> Self {
        let mut t = Self {
            node_id,
            spec,
            expires_at,
            coordinator_signature: SignatureBytes([0; 64]),
        };
        t.coordinator_signature = sign(coordinator, &t.canonical_bytes());
        t
    }

    /// The bytes the coordinator's signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(PROBE_DOMAIN);
        w.field(self.node_id.as_str().as_bytes());
        json_field(&mut w, &self.spec);
        time_field(&mut w, &self.expires_at);
        w.finish()
    }

    /// Checks the coordinator's signature.
    pub fn verify(&self, coordinator: &PublicKey) -> Result<(), Error> {
        coordinator.verify(&self.canonical_bytes(), &self.coordinator_signature)
    }
}

/// Work handed to a node: a queued job under a lease, or a probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Assignment {
    /// A queued job, leased to this node until `lease.lease.expires_at`.
    Job {
        /// The lease (job spec, payment, attempt, lease id and expiry).
        lease: Lease,
        /// The network fee the coordinator keeps, base units.
        fee: TokenAmount,
        /// What the node earns (`payment − fee`), base units.
        net: TokenAmount,
    },
    /// A probe job for a `pending` node (no payment, no receipt): a valid proof makes the node
    /// `active`.
    Probe {
        /// The probe.
        ticket: ProbeTicket,
    },
}

impl Assignment {
    /// The job to prove.
    pub fn spec(&self) -> &JobSpec {
        match self {
            Assignment::Job { lease, .. } => &lease.spec,
            Assignment::Probe { ticket } => &ticket.spec,
        }
    }
}

/// The answer to a lease request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseResponse {
    /// The work, or `null` when there is none for this node now.
    pub assignment: Option<Assignment>,
    /// When there is no work: how long to wait before asking again, seconds.
    pub retry_after_secs: u64,
    /// The node's status.
    pub node_status: NodeStatus,
}

/// `POST /api/jobs/complete`: a node hands in a proof, and (for a leased job) its signature
/// over the receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The node.
    pub node_id: NodeId,
    /// The job proven.
    pub job_id: JobId,
    /// The lease the node holds (`null` for a probe).
    pub lease_id: Option<LeaseId>,
    /// The probe ticket, for a probe (`null` for a leased job).
    pub probe: Option<ProbeTicket>,
    /// The proof.
    pub envelope: ProofEnvelope,
    /// The receipt body the node signs (for a leased job; `null` for a probe). The
    /// coordinator checks every field against the job, the proof and its fee, then
    /// countersigns it.
    pub receipt: Option<ReceiptBody>,
    /// The node's signature over `receipt`'s canonical bytes.
    pub receipt_signature: Option<SignatureBytes>,
    /// [`ProofEnvelope::transport_digest`] of `envelope` as the node sent it (set by
    /// [`CompleteRequest::sign`]). The signature covers it, so bytes altered on the way are
    /// told apart from a proof the node vouched for: the former is refused as a transport
    /// error (`transport_error`, send again), the latter goes to verification.
    pub envelope_digest: Hash32,
    /// When the agent sent it.
    pub sent_at: Timestamp,
    /// ed25519 signature over [`CompleteRequest::canonical_bytes`] by the node's key.
    pub signature: SignatureBytes,
}

impl CompleteRequest {
    /// The bytes the signature covers: node, job, lease, probe ticket signature, the
    /// envelope's hash and transport digest, the receipt's canonical bytes and signature,
    /// `sent_at`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(COMPLETE_DOMAIN);
        w.field(self.node_id.as_str().as_bytes())
            .field(self.job_id.0.as_bytes());
        match &self.lease_id {
            Some(l) => w.field(l.0.as_bytes()),
            None => w.field(&[]),
        };
        match &self.probe {
            Some(p) => w.field(&p.coordinator_signature.0),
            None => w.field(&[]),
        };
        w.field(&self.envelope.proof_hash.0);
        w.field(&self.envelope_digest.0);
        match &self.receipt {
            Some(r) => w.field(&r.canonical_bytes()),
            None => w.field(&[]),
        };
        match &self.receipt_signature {
            Some(s) => w.field(&s.0),
            None => w.field(&[]),
        };
        time_field(&mut w, &self.sent_at);
        w.finish()
    }

    /// Signs the request with `key`: fills `envelope_digest` from the envelope as it is now,
    /// then `signature`.
    pub fn sign(mut self, key: &SigningKey) -> Self {
        self.envelope_digest = self.envelope.transport_digest();
        self.signature = sign(key, &self.canonical_bytes());
        self
    }

    /// Checks the signature against `key` (the node's registered key).
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        key.verify(&self.canonical_bytes(), &self.signature)
    }
}

/// The answer to an accepted completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// The countersigned receipt (`null` for a probe).
    pub receipt: Option<ReceiptView>,
    /// The node's status after this completion (`active` after a passed probe).
    pub node_status: NodeStatus,
    /// The security level the proof was verified at, bits.
    pub security_bits: u32,
}

/// `POST /api/jobs/fail`: a node gives a leased job back (it could not prove it, or it is
/// shutting down), signed with its key. The job is re-queued, or failed at its retry limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// The node.
    pub node_id: NodeId,
    /// The job.
    pub job_id: JobId,
    /// The lease the node holds.
    pub lease_id: LeaseId,
    /// Why (1 to [`MAX_FAIL_REASON_LEN`] characters).
    pub reason: String,
    /// When the agent sent it.
    pub sent_at: Timestamp,
    /// ed25519 signature over [`FailRequest::canonical_bytes`] by the node's key.
    pub signature: SignatureBytes,
}

impl FailRequest {
    /// Builds a failure report signed with `key`.
    pub fn signed(
        key: &SigningKey,
        lease: &LeaseRef,
        reason: impl Into<String>,
        sent_at: Timestamp,
    ) -> Self {
        let mut req = Self {
            node_id: lease.node_id.clone(),
            job_id: lease.job_id,
            lease_id: lease.lease_id,
            reason: reason.into(),
            sent_at,
            signature: SignatureBytes([0; 64]),
        };
        req.signature = sign(key, &req.canonical_bytes());
        req
    }

    /// The bytes the signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(FAIL_DOMAIN);
        w.field(self.node_id.as_str().as_bytes())
            .field(self.job_id.0.as_bytes())
            .field(self.lease_id.0.as_bytes())
            .field(self.reason.as_bytes());
        time_field(&mut w, &self.sent_at);
        w.finish()
    }

    /// Checks the signature against `key` (the node's registered key).
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        key.verify(&self.canonical_bytes(), &self.signature)
    }

    /// The lease this report names.
    pub fn lease_ref(&self) -> LeaseRef {
        LeaseRef {
            job_id: self.job_id,
            lease_id: self.lease_id,
            node_id: self.node_id.clone(),
        }
    }
}

// ---------------------------------------------------------------- nodes

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Its ed25519 key.
    pub public_key: PublicKey,
    /// The wallet it earns for.
    pub wallet: WalletAddress,
    /// Its hardware as reported at registration (the raw attestation evidence is left out:
    /// see `attestation` and `GET /api/nodes/{id}/attestation`).
    pub hardware: HardwareReport,
    /// What the coordinator checked of the node's confidential-compute attestation.
    pub attestation: AttestationSummary,
    /// The agent's version at registration.
    pub agent_version: String,
    /// Lifecycle status.
    pub status: NodeStatus,
    /// Why it is in that status.
    pub status_reason: String,
    /// When the status last changed.
    pub status_changed_at: Timestamp,
    /// When it registered.
    pub registered_at: Timestamp,
}

impl From<NodeRecord> for NodeView {
    fn from(mut n: NodeRecord) -> Self {
        let attestation = n.hardware.attestation_summary();
        // The raw evidence is served by `GET /api/nodes/{id}/attestation` only.
        n.hardware.attestation = None;
        Self {
            id: n.id,
            public_key: n.public_key,
            wallet: n.wallet,
            hardware: n.hardware,
            attestation,
            agent_version: n.agent_version,
            status: n.status,
            status_reason: n.status_reason,
            status_changed_at: n.status_changed_at,
            registered_at: n.registered_at,
        }
    }
}

/// `GET /api/nodes/{id}`: a node with its latest heartbeat time and status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDetail {
    /// The node.
    #[serde(flatten)]
    pub node: NodeView,
    /// When its latest heartbeat arrived (`null` before the first).
    pub last_seen: Option<Timestamp>,
    /// Its GPU collector's health as its latest heartbeat reported it (`null` when that
    /// heartbeat carried none).
    pub gpu_collector: Option<ReportedCollector>,
    /// Its status changes, oldest first.
    pub history: Vec<StatusChange>,
}

/// `GET /api/nodes/attestation-challenge`: a fresh nonce for the node to attest over, signed
/// by the coordinator for the node's key; register with the answer before `expires_at`.
pub type ChallengeResponse = bitsage_core::attestation::AttestationChallenge;

/// Query of `GET /api/nodes/attestation-challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeQuery {
    /// The key the node will register with (hex); the challenge is valid for it only.
    pub public_key: PublicKey,
}

/// `GET /api/nodes/{id}/attestation`: the evidence a node registered with (the challenge and,
/// per GPU, NVML's report in hex), for verification with NVIDIA's tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationEvidence {
    /// The node.
    pub node_id: NodeId,
    /// What the coordinator checked.
    pub summary: AttestationSummary,
    /// The raw evidence.
    pub evidence: RegistrationAttestation,
}

/// Query of `GET /api/nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeListQuery {
    /// Only nodes in this status.
    pub status: Option<NodeStatus>,
    /// Only nodes earning for this wallet.
    pub wallet: Option<WalletAddress>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

// ---------------------------------------------------------------- receipts

/// Query of `GET /api/receipts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptListQuery {
    /// Only this node's receipts.
    pub node: Option<NodeId>,
    /// Only this job kind (e.g. `poseidon2-chain`).
    pub kind: Option<String>,
    /// Only receipts completed at or after this time.
    pub from: Option<Timestamp>,
    /// Only receipts completed before this time.
    pub to: Option<Timestamp>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// A receipt as the API shows it: the signed receipt (verifiable offline with its two keys)
/// plus formatted amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    /// The signed receipt, exactly as stored.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// `payment` for people.
    pub payment_formatted: String,
    /// `fee` for people.
    pub fee_formatted: String,
    /// `net` for people.
    pub net_formatted: String,
}

impl From<Receipt> for ReceiptView {
    fn from(receipt: Receipt) -> Self {
        Self {
            payment_formatted: receipt.body.payment.format_sage(),
            fee_formatted: receipt.body.fee.format_sage(),
            net_formatted: receipt.body.net.format_sage(),
            receipt,
        }
    }
}

/// Query of `GET /api/receipts/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// Include the proof envelope the receipt's `proof_hash` names (default `false`).
    pub with_proof: Option<bool>,
}

/// `GET /api/receipts/{id}`: the receipt, and with `?with_proof=true` the proof envelope it
/// names, so the whole thing can be checked offline (`bitsage-agent verify-receipt FILE`:
/// both signatures, the envelope's hash against the receipt, and the proof itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptBundle {
    /// The receipt with formatted amounts.
    #[serde(flatten)]
    pub receipt: ReceiptView,
    /// The proof envelope (only when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<ProofEnvelope>,
}

// ---------------------------------------------------------------- earnings

/// Response format of `GET /api/earnings/{node}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EarningsFormat {
    /// JSON ([`EarningsResponse`]).
    #[default]
    Json,
    /// CSV, one row per UTC day: `day,entries,gross,fee,net` in base units.
    Csv,
}

/// Query of `GET /api/earnings/{node}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarningsQuery {
    /// Only entries credited at or after this time.
    pub from: Option<Timestamp>,
    /// Only entries credited before this time.
    pub to: Option<Timestamp>,
    /// `json` (default) or `csv`.
    pub format: Option<EarningsFormat>,
}

/// Exact sums of earnings, in base units and formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarningsTotalView {
    /// Entries summed.
    pub entries: u64,
    /// Sum of what clients paid.
    pub gross: TokenAmount,
    /// `gross` for people.
    pub gross_formatted: String,
    /// Sum of network fees.
    pub fee: TokenAmount,
    /// `fee` for people.
    pub fee_formatted: String,
    /// Sum of what the node earned.
    pub net: TokenAmount,
    /// `net` for people.
    pub net_formatted: String,
}

impl From<EarningsTotal> for EarningsTotalView {
    fn from(t: EarningsTotal) -> Self {
        Self {
            entries: t.entries,
            gross_formatted: t.gross.format_sage(),
            gross: t.gross,
            fee_formatted: t.fee.format_sage(),
            fee: t.fee,
            net_formatted: t.net.format_sage(),
            net: t.net,
        }
    }
}

/// Earnings of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyEarningsView {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: chrono::NaiveDate,
    /// Its sums.
    #[serde(flatten)]
    pub total: EarningsTotalView,
}

impl From<DailyEarnings> for DailyEarningsView {
    fn from(d: DailyEarnings) -> Self {
        Self {
            day: d.day,
            total: d.total.into(),
        }
    }
}

/// `GET /api/earnings/{node}`: a node's exact earnings, in total and per UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarningsResponse {
    /// The node.
    pub node_id: NodeId,
    /// The window's start as asked (`null`: from the beginning).
    pub from: Option<Timestamp>,
    /// The window's end as asked (`null`: until now).
    pub to: Option<Timestamp>,
    /// Sums over the window.
    pub total: EarningsTotalView,
    /// Sums per UTC day, oldest first.
    pub days: Vec<DailyEarningsView>,
}

// ---------------------------------------------------------------- network

/// `GET /api/network/stats`: counts read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Nodes in status `active`.
    pub active_workers: u64,
    /// Registered nodes, any status.
    pub total_workers: u64,
    /// Jobs completed.
    pub total_jobs_processed: u64,
}

// ---------------------------------------------------------------- health

/// The health of the service or of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working.
    Ok,
    /// Not answering (or too slowly).
    Unavailable,
}

/// `GET /livez`: the process answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveResponse {
    /// Always `ok`.
    pub status: HealthStatus,
}

/// `GET /readyz` (and `/health`, `/health/ready`): readiness with per-component detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok` when every component is.
    pub status: HealthStatus,
    /// Each component's health.
    pub components: HealthComponents,
}

/// The components a readiness check looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthComponents {
    /// The job store.
    pub store: ComponentHealth,
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// Whether it answered in time.
    pub status: HealthStatus,
    /// The backend's name (`sqlite`, `postgres`, `memory`).
    pub backend: String,
    /// How long the check query took, milliseconds (when it answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it is unavailable (when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
