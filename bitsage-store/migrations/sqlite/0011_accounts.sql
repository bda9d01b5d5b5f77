-- Who may do what (bitsage_core::access): organisations and their wallets, user accounts,
-- refresh-token families, API keys, and the append-only audit log. Times are unix
-- microseconds; ids are hyphenated UUID text; secret hashes are lowercase hex.
CREATE TABLE orgs (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE INDEX orgs_by_creation ON orgs (created_at, id);

-- A wallet belongs to at most one organisation; seq keeps the order wallets were added in.
CREATE TABLE org_wallets (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet   TEXT NOT NULL UNIQUE,
    org_id   TEXT NOT NULL REFERENCES orgs (id),
    added_at INTEGER NOT NULL
);
CREATE INDEX org_wallets_by_org ON org_wallets (org_id, seq);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,            -- admin | operator | viewer
    org_id        TEXT REFERENCES orgs (id),
    disabled      INTEGER NOT NULL,         -- 0 | 1
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX users_by_creation ON users (created_at, id);
CREATE INDEX users_by_role ON users (role, disabled);

-- One row per refresh token ever issued (its hash only). A token is live while used_at and
-- revoked_at are NULL and expires_at is in the future.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY NOT NULL,
    family     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,  -- bsa_…, the public part of the secret
    hash         TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_by   TEXT NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL,
    org_id       TEXT REFERENCES orgs (id),
    scopes       TEXT NOT NULL,              -- JSON array of scope names
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_by_creation ON api_keys (created_at, id);
CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at, id);
CREATE INDEX api_keys_by_creator ON api_keys (created_by);

-- The audit log. AUTOINCREMENT: ids only grow (SQLite has one writer, so in commit order).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
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
CREATE INDEX audit_log_by_action ON audit_log (action);
CREATE INDEX audit_log_by_outcome ON audit_log (outcome, id);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Append-only: the database itself refuses to change or delete an entry.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
