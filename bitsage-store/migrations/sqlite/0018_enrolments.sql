-- Enrolment tokens (bitsage_core::access::Enrolment): one node may register with one, for one
-- of its organisation's wallets, once, before it expires. Only the secret's hash is kept.
CREATE TABLE enrolments (
    id         TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    wallet     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    node_id    TEXT UNIQUE
);
CREATE INDEX enrolments_by_org ON enrolments (org_id, created_at);
