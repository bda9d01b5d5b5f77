-- What operators run a network with: node profiles, per-minute heartbeat rollups (uptime
-- never scans raw heartbeats), the latest heartbeat time on the node, and per-job timings.

ALTER TABLE nodes ADD COLUMN region TEXT;
ALTER TABLE nodes ADD COLUMN runtime TEXT NOT NULL DEFAULT 'native';
ALTER TABLE nodes ADD COLUMN labels JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE nodes ADD COLUMN energy_tag TEXT;
ALTER TABLE nodes ADD COLUMN last_heartbeat_at TIMESTAMPTZ;
UPDATE nodes SET last_heartbeat_at = (SELECT MAX(at) FROM heartbeats WHERE node_id = nodes.id);
CREATE INDEX nodes_by_region ON nodes (region);

-- One row per node and UTC minute in which it heartbeated (minute = unix time / 60).
CREATE TABLE heartbeat_minutes (
    node_id TEXT NOT NULL,
    minute  BIGINT NOT NULL,
    beats   INTEGER NOT NULL,
    PRIMARY KEY (node_id, minute)
);
CREATE INDEX heartbeat_minutes_by_minute ON heartbeat_minutes (minute);
INSERT INTO heartbeat_minutes (node_id, minute, beats)
    SELECT node_id, floor(extract(epoch FROM at) / 60)::BIGINT AS m, COUNT(*)
    FROM heartbeats GROUP BY node_id, m;

-- Per completed job: how long it waited in the queue, ran under its last lease, and took to
-- verify; the node's region at completion time.
CREATE TABLE job_timings (
    job_id        UUID PRIMARY KEY,
    node_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    region        TEXT,
    completed_at  TIMESTAMPTZ NOT NULL,
    queue_wait_us BIGINT NOT NULL,
    run_us        BIGINT NOT NULL,
    verify_us     BIGINT NOT NULL
);
CREATE INDEX job_timings_by_time ON job_timings (completed_at);
CREATE INDEX job_timings_by_node ON job_timings (node_id, completed_at);
