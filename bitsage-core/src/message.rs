//! The signed messages of the node protocol — registration, heartbeat, lease, completion,
//! failure report — and the coordinator-signed probe ticket, shared by the coordinator's
//! services ([`crate::service::coordinator`]), every transport and the agent.
//!
//! Node messages are signed with the node's ed25519 key over *canonical bytes*
//! ([`CanonicalWriter`], length-prefixed fields after a domain tag such as
//! [`REGISTER_DOMAIN`]), never over a wire encoding, so whitespace or field order on the wire
//! does not matter and a signature for one message kind is never valid for another.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::crypto::{sign, CanonicalWriter, Hash32, PublicKey, SignatureBytes};
use crate::gpu::{GpuCollectorStatus, GpuSample};
use crate::job::{JobKind, Lease, LeaseRef};
use crate::node::HardwareReport;
use crate::proof::ProofEnvelope;
use crate::receipt::ReceiptBody;
use crate::wallet::WalletProof;
use crate::{Error, JobId, JobSpec, LeaseId, NodeId, Timestamp, TokenAmount, WalletAddress};

/// Domain tag of a registration's canonical bytes.
pub const REGISTER_DOMAIN: &str = "bitsage/register/v1";
/// Domain tag of a heartbeat's canonical bytes.
pub const HEARTBEAT_DOMAIN: &str = "bitsage/heartbeat/v1";

/// Longest accepted agent version string.
pub const MAX_AGENT_VERSION_LEN: usize = 64;

/// A message a registered node signs with its key: who sent it, when, and the bytes its
/// signature covers. The coordinator authenticates every such message the same way (the
/// node's stored key, the clock-skew window, accepted once across the deployment).
pub trait NodeSignedMessage {
    /// The sending node.
    fn sender(&self) -> &NodeId;
    /// When the node sent it.
    fn sent_at(&self) -> Timestamp;
    /// The bytes the signature covers (after the message kind's domain tag).
    fn signed_bytes(&self) -> Vec<u8>;
    /// The node's signature.
    fn node_signature(&self) -> &SignatureBytes;
    /// Checks the signature against `key` (the node's registered key).
    fn verify_with(&self, key: &PublicKey) -> Result<(), Error> {
        key.verify(&self.signed_bytes(), self.node_signature())
    }
}

macro_rules! node_signed {
    ($($t:ty),*) => {$(
        impl NodeSignedMessage for $t {
            fn sender(&self) -> &NodeId {
                &self.node_id
            }
            fn sent_at(&self) -> Timestamp {
                self.sent_at
            }
            fn signed_bytes(&self) -> Vec<u8> {
                self.canonical_bytes()
            }
            fn node_signature(&self) -> &SignatureBytes {
                &self.signature
            }
        }
    )*};
}

node_signed!(HeartbeatRequest, LeaseRequest, CompleteRequest, FailRequest);

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub sent_at: Timestamp,
    /// The wallet account's signature over this node key and a coordinator nonce
    /// ([`crate::wallet`]); required by a coordinator with a chain, else the wallet is
    /// stored unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_proof: Option<WalletProof>,
    /// Region, runtime, labels and energy tag from the agent's configuration (a
    /// re-registration with another profile updates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::node::NodeProfile>,
    /// The enrolment token the operator created for this node ([`crate::access::Enrolment`]):
    /// ties a new node to the organisation's wallet; required where the deployment says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_token: Option<String>,
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
            wallet_proof: None,
            profile: None,
            enrolment_token: None,
            signature: SignatureBytes([0; 64]),
        };
        req.signature = sign(key, &req.canonical_bytes());
        req
    }

    /// The same request carrying an enrolment `token`, signed again with `key`.
    pub fn with_enrolment_token(mut self, token: impl Into<String>, key: &SigningKey) -> Self {
        self.enrolment_token = Some(token.into());
        self.signature = sign(key, &self.canonical_bytes());
        self
    }

    /// The same request carrying `proof` of its wallet, signed again with `key`.
    pub fn with_wallet_proof(mut self, proof: WalletProof, key: &SigningKey) -> Self {
        self.wallet_proof = Some(proof);
        self.signature = sign(key, &self.canonical_bytes());
        self
    }

    /// The same request carrying `profile`, signed again with `key`.
    pub fn with_profile(mut self, profile: crate::node::NodeProfile, key: &SigningKey) -> Self {
        self.profile = Some(profile);
        self.signature = sign(key, &self.canonical_bytes());
        self
    }

    /// The bytes the signature covers (every field but the signature, after
    /// [`REGISTER_DOMAIN`]; the wallet proof only when there is one).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(REGISTER_DOMAIN);
        w.field(self.node_id.as_str().as_bytes())
            .field(&self.public_key.to_bytes())
            .field(self.wallet.as_bytes());
        json_field(&mut w, &self.hardware);
        w.field(self.agent_version.as_bytes());
        time_field(&mut w, &self.sent_at);
        if let Some(proof) = &self.wallet_proof {
            json_field(&mut w, proof);
        }
        if let Some(profile) = &self.profile {
            // Tagged, so a profile can never be read as a wallet proof or the reverse.
            w.field(b"profile");
            json_field(&mut w, profile);
        }
        if let Some(token) = &self.enrolment_token {
            w.field(b"enrolment");
            w.field(token.as_bytes());
        }
        w.finish()
    }

    /// Checks the signature against the request's own `public_key` (proof of possession).
    pub fn verify(&self) -> Result<(), Error> {
        self.public_key
            .verify(&self.canonical_bytes(), &self.signature)
    }
}

// ---------------------------------------------------------------- heartbeat

/// `POST /api/nodes/heartbeat`: a node says it is alive, signed with its registered key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The node's id.
    pub node_id: NodeId,
    /// Strictly increasing per node (replay protection).
    pub sequence: u64,
    /// When the agent sent it (must lie within the server's clock-skew window).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
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
        self.verify_with(key)
    }
}

// ---------------------------------------------------------------- jobs (clients)

/// Largest `max_attempts` a client may ask for.
pub const MAX_JOB_ATTEMPTS: u32 = 10;

/// Largest payment a job may carry: 2^128 − 1 base units (≈ 3.4 × 10^20 SAGE). Below it the
/// fee arithmetic and every ledger sum (up to 2^128 such payments) fit a u256, so a job that
/// was accepted can always be paid.
pub const MAX_JOB_PAYMENT: TokenAmount = TokenAmount::from_u128(u128::MAX);

/// `POST /api/jobs`: a client submits a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The paying account (a Starknet account address); its funds must cover `payment`.
    pub payer: WalletAddress,
    /// Any number, so that two otherwise equal submissions differ (each is accepted once).
    pub nonce: u64,
    /// When the payer signed it (must lie within the clock-skew window).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub sent_at: Timestamp,
    /// The payer account's SNIP-12 signature over the [`crate::funding::PaymentClaim`]
    /// (`[r, s]` for a standard account).
    pub signature: Vec<crate::wallet::FeltHex>,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The node.
    pub node_id: NodeId,
    /// A random value; with `sent_at` it makes each request unique (replay protection).
    pub nonce: u64,
    /// When the agent sent it (must lie within the server's clock-skew window).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
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
        self.verify_with(key)
    }
}

/// A probe: a small job the coordinator gives a `pending` node outside the queue. The ticket is
/// the coordinator's own signature over the probe, so any coordinator sharing its key can check
/// a completed probe without remembering it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProbeTicket {
    /// The node the probe is for.
    pub node_id: NodeId,
    /// The probe job.
    pub spec: JobSpec,
    /// The probe must be completed before this time.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// `POST /api/jobs/complete`: a node hands in a proof, and (for a leased job) its signature
/// over the receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
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
        self.verify_with(key)
    }
}

/// `POST /api/jobs/fail`: a node gives a leased job back (it could not prove it, or it is
/// shutting down), signed with its key. The job is re-queued, or failed at its retry limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
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
        self.verify_with(key)
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
