-- Settlement epochs: each verified completion's receipt waits (epoch_id NULL) until a settler
-- assigns it to an epoch and sends the epoch on chain, exactly once per epoch id.
CREATE TABLE epochs (
    id         BIGINT PRIMARY KEY,
    state      TEXT NOT NULL,            -- pending | sent | accepted | failed
    tx_hash    TEXT,
    block      BIGINT,
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE receipts ADD COLUMN epoch_id BIGINT;
CREATE INDEX receipts_by_epoch ON receipts (epoch_id, completed_at, id);
-- Nodes caught cheating, slashed on chain in the next epoch.
CREATE TABLE slashes (
    seq      BIGSERIAL PRIMARY KEY,
    node_id  TEXT NOT NULL,
    worker   TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    epoch_id BIGINT
);
