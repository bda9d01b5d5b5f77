-- BitSage coordinator state, PostgreSQL dialect.
-- Money is NUMERIC(78,0): every u256 fits exactly (2^256 has 78 decimal digits).

CREATE TABLE nodes (
    id                TEXT PRIMARY KEY,
    public_key        TEXT NOT NULL,
    wallet            TEXT NOT NULL,
    hardware          JSONB NOT NULL,
    agent_version     TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT NOT NULL,
    status_changed_at TIMESTAMPTZ NOT NULL,
    registered_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX nodes_by_registration ON nodes (registered_at, id);
CREATE INDEX nodes_by_wallet ON nodes (wallet);
CREATE INDEX nodes_by_status ON nodes (status);

CREATE TABLE node_status_history (
    seq         BIGSERIAL PRIMARY KEY,
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX node_status_history_by_node ON node_status_history (node_id, seq);

CREATE TABLE heartbeats (
    node_id         TEXT NOT NULL REFERENCES nodes (id),
    sequence        BIGINT NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    load_average_1m DOUBLE PRECISION,
    agent_version   TEXT NOT NULL,
    PRIMARY KEY (node_id, sequence)
);
CREATE INDEX heartbeats_by_time ON heartbeats (node_id, at);

CREATE TABLE gpu_samples (
    id          BIGSERIAL PRIMARY KEY,
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    device_uuid TEXT NOT NULL,
    sampled_at  TIMESTAMPTZ NOT NULL,
    sample      JSONB NOT NULL
);
CREATE INDEX gpu_samples_by_device ON gpu_samples (node_id, device_uuid, sampled_at);
CREATE INDEX gpu_samples_by_time ON gpu_samples (sampled_at);

CREATE TABLE jobs (
    id               UUID PRIMARY KEY,
    kind             TEXT NOT NULL,
    spec             JSONB NOT NULL,
    payment          NUMERIC(78, 0) NOT NULL CHECK (payment >= 0),
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    lease_id         UUID,
    lease_node       TEXT,
    leased_at        TIMESTAMPTZ,
    lease_expires_at TIMESTAMPTZ,
    result           JSONB,
    completed_by     TEXT,
    last_error       TEXT,
    submitted_at     TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_queue ON jobs (submitted_at, id) WHERE status = 'queued';
CREATE INDEX jobs_by_submission ON jobs (submitted_at, id);
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'leased';

CREATE TABLE receipts (
    id           UUID PRIMARY KEY,
    job_id       UUID NOT NULL,
    node_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    receipt      JSONB NOT NULL
);
CREATE INDEX receipts_by_time ON receipts (completed_at, id);
CREATE INDEX receipts_by_node ON receipts (node_id, completed_at);

CREATE TABLE earnings (
    id          UUID PRIMARY KEY,
    node_id     TEXT NOT NULL,
    job_id      UUID NOT NULL,
    gross       NUMERIC(78, 0) NOT NULL CHECK (gross >= 0),
    fee         NUMERIC(78, 0) NOT NULL CHECK (fee >= 0),
    net         NUMERIC(78, 0) NOT NULL CHECK (net >= 0),
    credited_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX earnings_by_node ON earnings (node_id, credited_at);

CREATE TABLE chain_events (
    block_hash   TEXT NOT NULL,
    tx_hash      TEXT NOT NULL,
    event_index  INTEGER NOT NULL,
    block_number BIGINT NOT NULL,
    contract     TEXT NOT NULL,
    keys         JSONB NOT NULL,
    data         JSONB NOT NULL,
    PRIMARY KEY (block_hash, tx_hash, event_index)
);
CREATE INDEX chain_events_by_block ON chain_events (block_number);

CREATE TABLE indexer_cursors (
    indexer      TEXT PRIMARY KEY,
    block_number BIGINT NOT NULL,
    block_hash   TEXT NOT NULL
);
