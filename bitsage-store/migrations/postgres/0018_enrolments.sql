-- Enrolment tokens (bitsage_core::access::Enrolment): one node may register with one, for one
-- of its organisation's wallets, once, before it expires. Only the secret's hash is kept.
CREATE TABLE enrolments (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    org_id     UUID NOT NULL REFERENCES orgs (id),
    wallet     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    node_id    TEXT UNIQUE
);
CREATE INDEX enrolments_by_org ON enrolments (org_id, created_at);
