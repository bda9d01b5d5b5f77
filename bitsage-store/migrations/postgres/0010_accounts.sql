-- Who may do what (bitsage_core::access): organisations and their wallets, user accounts,
-- refresh-token families, API keys, and the append-only audit log. Secret hashes are
-- lowercase hex.
CREATE TABLE orgs (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX orgs_by_creation ON orgs (created_at, id);

-- A wallet belongs to at most one organisation; seq keeps the order wallets were added in.
CREATE TABLE org_wallets (
    seq      BIGSERIAL PRIMARY KEY,
    wallet   TEXT NOT NULL UNIQUE,
    org_id   UUID NOT NULL REFERENCES orgs (id),
    added_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX org_wallets_by_org ON org_wallets (org_id, seq);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,            -- admin | operator | viewer
    org_id        UUID REFERENCES orgs (id),
    disabled      BOOLEAN NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_by_creation ON users (created_at, id);
CREATE INDEX users_by_role ON users (role, disabled);

-- One row per refresh token ever issued (its hash only). A token is live while used_at and
-- revoked_at are NULL and expires_at is in the future.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    family     UUID NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (id),
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,          -- bsa_…, the public part of the secret
    hash         TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_by   UUID NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL,
    org_id       UUID REFERENCES orgs (id),
    scopes       JSONB NOT NULL,            -- array of scope names
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_by_creation ON api_keys (created_at, id);
CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at, id);
CREATE INDEX api_keys_by_creator ON api_keys (created_by);

-- The audit log. Appenders take a transaction-scoped advisory lock before inserting, so ids
-- are assigned in commit order: an entry appended after another returned has a larger id.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    role       TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    outcome    TEXT NOT NULL,               -- success | denied | failed
    status     INTEGER,
    request_id TEXT,
    source     TEXT
);
CREATE INDEX audit_log_by_actor ON audit_log (actor, id);
CREATE INDEX audit_log_by_action ON audit_log (action text_pattern_ops);
CREATE INDEX audit_log_by_outcome ON audit_log (outcome, id);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Append-only: the database itself refuses to change, delete or truncate an entry.
CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
