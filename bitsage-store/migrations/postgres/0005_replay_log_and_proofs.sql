-- Signed node messages already accepted (lease, complete, fail), by a digest of their signed
-- bytes: shared by every coordinator of the deployment, so a message is accepted once.
CREATE TABLE replay_log (
    digest BYTEA PRIMARY KEY,
    keep_until TIMESTAMPTZ NOT NULL
);
CREATE INDEX replay_log_keep_until ON replay_log (keep_until);

-- Proof envelopes (JSON) by proof hash: any coordinator serves the proof behind any receipt.
CREATE TABLE proofs (
    proof_hash BYTEA PRIMARY KEY,
    envelope BYTEA NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
