//! Node use cases: register, heartbeat, the attestation challenge a node answers before it
//! registers, and the one way a lifecycle event is applied on a request's behalf.

use std::time::Duration;

use crate::attestation::{AttestationChallenge, ATTESTATION_NONCE_LEN};
use crate::crypto::PublicKey;
use crate::gpu::GpuSample;
use crate::message::{
    HeartbeatRequest, NodeSignedMessage as _, RegisterRequest, MAX_AGENT_VERSION_LEN,
};
use crate::node::{Heartbeat, NewNode, NodeRecord};
use crate::time::check_skew;
use crate::wallet::{AccountMessage, WalletCheck, WalletClaim};
use crate::{Error, LifecycleEvent, NodeStatus, Timestamp};

use super::coordinator::{Coordinator, ServiceError, ServiceResult};

/// The single message for every refused heartbeat whose sender has not proven its key, so
/// the answer does not tell whether a node id exists.
pub const HEARTBEAT_REJECTED: &str = "heartbeat rejected: unknown node or bad signature";

/// Most GPU samples one heartbeat may carry.
pub const MAX_SAMPLES_PER_HEARTBEAT: usize = 1024;

/// A registration's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The node as stored.
    pub node: NodeRecord,
    /// `false`: the same id and key were already registered; nothing changed.
    pub created: bool,
}

fn check_agent_version(v: &str) -> Result<(), Error> {
    if v.is_empty() || v.len() > MAX_AGENT_VERSION_LEN || v.chars().any(char::is_control) {
        return Err(Error::invalid(
            "agent version",
            format!("must be 1 to {MAX_AGENT_VERSION_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// Checks a heartbeat's GPU samples: each valid ([`GpuSample::validate`]), taken within the
/// clock-skew window, and of a device the node registered (a node reports its own GPUs only).
fn check_samples(
    gpu_uuids: &[String],
    samples: &[GpuSample],
    now: Timestamp,
    max_skew: Duration,
) -> Result<(), Error> {
    if samples.len() > MAX_SAMPLES_PER_HEARTBEAT {
        return Err(Error::invalid(
            "heartbeat",
            format!("at most {MAX_SAMPLES_PER_HEARTBEAT} GPU samples per heartbeat"),
        ));
    }
    for s in samples {
        s.validate()?;
        if !gpu_uuids.contains(&s.uuid) {
            return Err(Error::invalid(
                "GPU sample",
                format!(
                    "device {:?} is not in the node's registered hardware",
                    s.uuid
                ),
            ));
        }
        check_skew(s.at, now, max_skew)
            .map_err(|_| Error::invalid("GPU sample", "`at` is outside the clock-skew window"))?;
    }
    Ok(())
}

impl Coordinator {
    /// Registers a node. The signature must verify with the request's own key (proof of
    /// possession), `sent_at` lie in the skew window, attestation evidence (when given)
    /// answer a challenge this deployment issued. The same id with the same key again is
    /// not an error (`created: false`); another key for a known id is a conflict. Nothing is
    /// stored on failure.
    pub async fn register(
        &self,
        req: RegisterRequest,
        now: Timestamp,
    ) -> ServiceResult<Registered> {
        req.verify()?;
        check_skew(req.sent_at, now, self.policy.max_clock_skew)?;
        check_agent_version(&req.agent_version)?;
        req.hardware.validate()?;
        if let Some(profile) = &req.profile {
            profile.validate()?;
        }
        if let Some(attestation) = &req.hardware.attestation {
            let uuids: Vec<&str> = req.hardware.gpus.iter().map(|g| g.uuid.as_str()).collect();
            attestation
                .check(&self.deployment.public_key(), &req.public_key, now, &uuids)
                .map_err(|e| ServiceError::AttestationRejected(e.to_string()))?;
        }
        let same_key = |existing: NodeRecord| {
            if existing.public_key == req.public_key {
                Ok(Registered {
                    node: existing,
                    created: false,
                })
            } else {
                Err(ServiceError::Domain(Error::Conflict(format!(
                    "node {} is already registered with another key",
                    req.node_id
                ))))
            }
        };
        if let Some(existing) = self.store.get_node(&req.node_id).await? {
            let mut registered = same_key(existing)?;
            if let Some(profile) = &req.profile {
                if *profile != registered.node.profile {
                    registered.node = self.store.set_node_profile(&req.node_id, profile).await?;
                    tracing::info!(node = %req.node_id, region = ?profile.region, runtime = %profile.runtime, "node profile updated on re-registration");
                }
            }
            return self.prove_later(registered, &req, now).await;
        }
        let wallet_proven_at = self.check_wallet(&req, now).await?;
        self.enrol(&req, now).await?;
        let new = NewNode {
            id: req.node_id.clone(),
            public_key: req.public_key,
            wallet: req.wallet,
            hardware: req.hardware.clone(),
            agent_version: req.agent_version.clone(),
            registered_at: now,
            wallet_proven_at,
            profile: req.profile.clone().unwrap_or_default(),
        };
        match self.store.create_node(&new).await {
            Ok(node) => {
                tracing::info!(node = %node.id, wallet = %node.wallet, wallet_status = node.wallet_status().as_str(), "node registered");
                Ok(Registered {
                    node,
                    created: true,
                })
            }
            // Lost a race with a concurrent registration of the same id: answer as a re-register.
            Err(Error::AlreadyExists { .. }) => match self.store.get_node(&req.node_id).await? {
                Some(existing) => same_key(existing),
                None => Err(Error::Conflict("node registration raced; retry".into()).into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// A new node's enrolment: its token is spent for it (refused when unknown, expired, used
    /// by another node or for another wallet); without one, refused where the deployment
    /// requires enrolment. Only new nodes are enrolled: a known node re-registering keeps
    /// what it had.
    async fn enrol(&self, req: &RegisterRequest, now: Timestamp) -> ServiceResult<()> {
        use crate::access::Redemption;
        let Some(token) = &req.enrolment_token else {
            if self.policy.require_enrolment {
                return Err(ServiceError::EnrolmentRejected(
                    "this network admits new nodes with an enrolment token only: create one \
                     on the console's Run a Node page (enrolment_token in agent.yaml)"
                        .into(),
                ));
            }
            return Ok(());
        };
        crate::access::check_enrolment_token(token)?;
        let hash = crate::access::secret_hash(token);
        let why = match self
            .store
            .redeem_enrolment(&hash, &req.node_id, &req.wallet, now)
            .await?
        {
            Redemption::Redeemed(e) => {
                tracing::info!(node = %req.node_id, enrolment = %e.id, org = %e.org, "node enrolled");
                return Ok(());
            }
            Redemption::Unknown => "the enrolment token is not known here",
            Redemption::Expired => "the enrolment token has expired: create a new one",
            Redemption::Spent => "the enrolment token was used by another node: create a new one",
            Redemption::WrongWallet => {
                "the enrolment token is for another wallet than the one this node registers with"
            }
        };
        Err(ServiceError::EnrolmentRejected(why.into()))
    }

    /// A known node registered unverified (e.g. before this deployment had a chain) that now
    /// presents a proof of the same wallet: the proof is checked like a new registration's
    /// and, when it holds, the node's wallet is proven from now on.
    async fn prove_later(
        &self,
        registered: Registered,
        req: &RegisterRequest,
        now: Timestamp,
    ) -> ServiceResult<Registered> {
        let node = &registered.node;
        let upgrade = self.wallets.is_some()
            && node.wallet_proven_at.is_none()
            && req.wallet_proof.is_some()
            && req.wallet == node.wallet;
        if !upgrade {
            return Ok(registered);
        }
        let Some(at) = self.check_wallet(req, now).await? else {
            return Ok(registered);
        };
        let node = self.store.set_wallet_proven(&node.id, at).await?;
        tracing::info!(node = %node.id, wallet = %node.wallet, "wallet proven on re-registration");
        Ok(Registered {
            node,
            created: false,
        })
    }

    /// The wallet check of a new registration: `Some(now)` when the wallet account signed the
    /// claim (checked by the wallet verifier), `None` (unverified) when this coordinator has
    /// no verifier; refused when a verifier is configured and the proof is missing, stale,
    /// issued to another key or refused by the account.
    async fn check_wallet(
        &self,
        req: &RegisterRequest,
        now: Timestamp,
    ) -> ServiceResult<Option<Timestamp>> {
        if let Some(proof) = &req.wallet_proof {
            proof.validate()?;
        }
        let Some(verifier) = &self.wallets else {
            return Ok(None);
        };
        let Some(proof) = &req.wallet_proof else {
            return Err(ServiceError::WalletRejected(format!(
                "wallet {} is not proven: this network registers a node only with its wallet \
                 account's signature over the node key (`bitsage-agent run --wallet-key FILE`, \
                 or `bitsage-agent wallet typed-data` for an external wallet)",
                req.wallet
            )));
        };
        let rejected =
            |why: String| ServiceError::WalletRejected(format!("wallet proof refused: {why}"));
        proof
            .challenge
            .verify(&self.deployment.public_key(), now)
            .map_err(|e| rejected(e.to_string()))?;
        if proof.challenge.public_key != req.public_key {
            return Err(rejected(
                "the challenge was issued to another node key".into(),
            ));
        }
        let claim = WalletClaim::new(req.wallet, &proof.challenge, self.deployment.network())?;
        match verifier
            .check(&AccountMessage::NodeWallet(claim), &proof.signature)
            .await?
        {
            WalletCheck::Valid => Ok(Some(now)),
            WalletCheck::Refused(why) => Err(rejected(format!("account {}: {why}", req.wallet))),
        }
    }

    /// Accepts a heartbeat signed with the node's stored key: stores it (received at `now`)
    /// with its GPU samples and collector status in one store transaction (which may be shared
    /// with concurrent heartbeats: group commit), then applies the lifecycle's `Heartbeat`
    /// event to the status that commit returned; answers the node's status. Unknown node, bad
    /// signature or a sequence not above the last one (a replay, also one sent to another
    /// coordinator of the deployment) → [`ServiceError::Unauthenticated`] / unauthorized,
    /// nothing stored.
    ///
    /// The node's key and GPU inventory come from the in-process cache ([`super::ingest`]):
    /// they never change once registered, so the hot path reads nothing before its write.
    pub async fn heartbeat(
        &self,
        req: HeartbeatRequest,
        now: Timestamp,
    ) -> ServiceResult<NodeStatus> {
        let started = std::time::Instant::now();
        let result = self.accept_heartbeat(req, now).await;
        // What the pacer judges: the whole time a heartbeat spends here (key, signature,
        // checks, waiting for CPU and for its commit), so ingest that falls behind on CPU
        // raises the interval as surely as a slow disk does.
        self.ingest.pacer.observe(started.elapsed());
        match &result {
            Ok(_) => self.telemetry.heartbeat_accepted(),
            Err(_) => self.telemetry.heartbeat_rejected(),
        }
        result
    }

    async fn accept_heartbeat(
        &self,
        req: HeartbeatRequest,
        now: Timestamp,
    ) -> ServiceResult<NodeStatus> {
        let identity = match self.ingest.keys.get(&req.node_id) {
            Some(identity) => identity,
            None => {
                let node = self
                    .store
                    .get_node(&req.node_id)
                    .await?
                    .ok_or(ServiceError::Unauthenticated(HEARTBEAT_REJECTED))?;
                self.ingest.keys.insert(&node)
            }
        };
        req.verify_with(&identity.public_key)
            .map_err(|_| ServiceError::Unauthenticated(HEARTBEAT_REJECTED))?;
        // From here on the sender holds the node key, so precise reasons reveal nothing.
        check_skew(req.sent_at, now, self.policy.max_clock_skew)?;
        check_agent_version(&req.agent_version)?;
        check_samples(
            &identity.gpu_uuids,
            &req.gpu_samples,
            now,
            self.policy.max_clock_skew,
        )?;
        if let Some(c) = &req.gpu_collector {
            c.validate()?;
        }
        let beat = Heartbeat {
            node_id: req.node_id,
            at: now,
            sequence: req.sequence,
            load_average_1m: req.load_average_1m,
            agent_version: req.agent_version,
            gpu_collector: req.gpu_collector,
            gpu_samples: req.gpu_samples,
        };
        let status = match self.store.append_heartbeat(&beat).await {
            Ok(status) => status,
            Err(Error::Conflict(_)) => {
                return Err(ServiceError::Unauthorized(
                    "heartbeat rejected: sequence is not above the last accepted one (replay)"
                        .into(),
                ))
            }
            Err(Error::NotFound { .. }) => {
                return Err(ServiceError::Unauthenticated(HEARTBEAT_REJECTED))
            }
            Err(e) => return Err(e.into()),
        };
        {
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            tally.since.get_or_insert(now);
            *tally.per_node.entry(beat.node_id.clone()).or_default() += 1;
        }
        let after = super::lifecycle::apply_from(
            &*self.store,
            &beat.node_id,
            status,
            &LifecycleEvent::Heartbeat,
            now,
        )
        .await?;
        if after != status {
            tracing::info!(node = %beat.node_id, from = %status, to = %after, event = "heartbeat", "node status changed");
        }
        Ok(after)
    }

    /// The heartbeat interval to tell agents now: the policy's interval, raised (up to
    /// [`CoordinatorPolicy::heartbeat_interval_range`]) while this coordinator's heartbeat
    /// commits take longer than [`CoordinatorPolicy::heartbeat_latency_target`].
    ///
    /// [`CoordinatorPolicy::heartbeat_interval_range`]: super::CoordinatorPolicy::heartbeat_interval_range
    /// [`CoordinatorPolicy::heartbeat_latency_target`]: super::CoordinatorPolicy::heartbeat_latency_target
    pub fn advertised_heartbeat_interval(&self) -> std::time::Duration {
        let (base, max) = self.policy.heartbeat_interval_range();
        self.ingest
            .pacer
            .interval(base, max, self.policy.heartbeat_latency_target)
    }

    /// The recent mean time a heartbeat took to be answered here, commit included (`None`
    /// before the first).
    pub fn heartbeat_store_latency(&self) -> Option<std::time::Duration> {
        self.ingest.pacer.latency()
    }

    /// A fresh random nonce for `public_key`, signed with the deployment key, valid for
    /// [`super::CoordinatorPolicy::attestation_challenge_ttl`]; any coordinator of the
    /// deployment accepts the answer.
    pub fn attestation_challenge(
        &self,
        public_key: PublicKey,
        now: Timestamp,
    ) -> ServiceResult<AttestationChallenge> {
        let expires_at = crate::time::after(now, self.policy.attestation_challenge_ttl)
            .ok_or_else(|| Error::invalid("attestation challenge", "expiry out of range"))?;
        let nonce: [u8; ATTESTATION_NONCE_LEN] = rand::random();
        Ok(AttestationChallenge::signed(
            self.deployment.signing_key(),
            public_key,
            nonce,
            expires_at,
        ))
    }

    /// Applies a lifecycle event to `node` through [`super::lifecycle::apply`] (the one place
    /// lifecycle events are applied) and logs a move.
    pub async fn apply_event(
        &self,
        node: &NodeRecord,
        event: &LifecycleEvent,
        now: Timestamp,
    ) -> Result<NodeStatus, Error> {
        let status = super::lifecycle::apply(&*self.store, node, event, now).await?;
        if status != node.status {
            tracing::info!(node = %node.id, from = %node.status, to = %status, event = event.name(), "node status changed");
        }
        Ok(status)
    }
}
