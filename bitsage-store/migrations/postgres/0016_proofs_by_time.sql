-- Proof retention deletes by the time a proof was stored.
CREATE INDEX proofs_by_stored_at ON proofs (stored_at);
