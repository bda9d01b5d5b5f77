-- BitSage coordinator state, SQLite dialect.
-- Times are INTEGER microseconds since the Unix epoch (UTC).
-- Money is TEXT: decimal base units of a u256, summed exactly in Rust, never REAL or INTEGER.

CREATE TABLE nodes (
    id                TEXT PRIMARY KEY NOT NULL,
    public_key        TEXT NOT NULL,
    wallet            TEXT NOT NULL,
    hardware          TEXT NOT NULL,           -- JSON HardwareReport
    agent_version     TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT NOT NULL,
    status_changed_at INTEGER NOT NULL,
    registered_at     INTEGER NOT NULL
);
CREATE INDEX nodes_by_registration ON nodes (registered_at, id);
CREATE INDEX nodes_by_wallet ON nodes (wallet);
CREATE INDEX nodes_by_status ON nodes (status);

CREATE TABLE node_status_history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX node_status_history_by_node ON node_status_history (node_id, seq);

CREATE TABLE heartbeats (
    node_id         TEXT NOT NULL REFERENCES nodes (id),
    sequence        INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    load_average_1m REAL,
    agent_version   TEXT NOT NULL,
    PRIMARY KEY (node_id, sequence)
) WITHOUT ROWID;
CREATE INDEX heartbeats_by_time ON heartbeats (node_id, at);

CREATE TABLE gpu_samples (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    device_uuid TEXT NOT NULL,
    sampled_at  INTEGER NOT NULL,
    sample      TEXT NOT NULL                  -- JSON GpuSample
);
CREATE INDEX gpu_samples_by_device ON gpu_samples (node_id, device_uuid, sampled_at);
CREATE INDEX gpu_samples_by_time ON gpu_samples (sampled_at);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    spec             TEXT NOT NULL,            -- JSON JobKind with parameters
    payment          TEXT NOT NULL,            -- decimal base units
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    lease_id         TEXT,
    lease_node       TEXT,
    leased_at        INTEGER,
    lease_expires_at INTEGER,
    result           TEXT,                     -- JSON JobResult
    completed_by     TEXT,
    last_error       TEXT,
    submitted_at     INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_queue ON jobs (status, submitted_at, id);
CREATE INDEX jobs_by_submission ON jobs (submitted_at, id);
CREATE INDEX jobs_leases ON jobs (status, lease_expires_at);

CREATE TABLE receipts (
    id           TEXT PRIMARY KEY NOT NULL,
    job_id       TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    completed_at INTEGER NOT NULL,
    receipt      TEXT NOT NULL                 -- JSON Receipt (both signatures)
);
CREATE INDEX receipts_by_time ON receipts (completed_at, id);
CREATE INDEX receipts_by_node ON receipts (node_id, completed_at);

CREATE TABLE earnings (
    id          TEXT PRIMARY KEY NOT NULL,
    node_id     TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    gross       TEXT NOT NULL,
    fee         TEXT NOT NULL,
    net         TEXT NOT NULL,
    credited_at INTEGER NOT NULL
);
CREATE INDEX earnings_by_node ON earnings (node_id, credited_at);

CREATE TABLE chain_events (
    block_hash   TEXT NOT NULL,
    tx_hash      TEXT NOT NULL,
    event_index  INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    contract     TEXT NOT NULL,
    keys         TEXT NOT NULL,                -- JSON array of hex felts
    data         TEXT NOT NULL,                -- JSON array of hex felts
    PRIMARY KEY (block_hash, tx_hash, event_index)
) WITHOUT ROWID;
CREATE INDEX chain_events_by_block ON chain_events (block_number);

CREATE TABLE indexer_cursors (
    indexer      TEXT PRIMARY KEY NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash   TEXT NOT NULL
);
