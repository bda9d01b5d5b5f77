-- Settlement epochs: each verified completion's receipt waits (epoch_id NULL) until a settler
-- assigns it to an epoch and sends the epoch on chain, exactly once per epoch id.
CREATE TABLE epochs (
    id         INTEGER PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL,            -- pending | sent | accepted | failed
    tx_hash    TEXT,
    block      INTEGER,
    reason     TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
ALTER TABLE receipts ADD COLUMN epoch_id INTEGER;
CREATE INDEX receipts_by_epoch ON receipts (epoch_id, completed_at, id);
-- Nodes caught cheating, slashed on chain in the next epoch.
CREATE TABLE slashes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id  TEXT NOT NULL,
    worker   TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL,
    epoch_id INTEGER
);
