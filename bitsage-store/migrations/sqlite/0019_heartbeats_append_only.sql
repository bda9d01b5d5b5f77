-- Heartbeat history as an append-only rowid table. It was keyed (node_id, sequence) WITHOUT
-- ROWID, so every heartbeat inserted into the middle of that tree at its node's place as well as
-- into the (node_id, at) index: two scattered pages dirtied (and written to the WAL) per
-- heartbeat and per commit. A sequence is already unique per node without the key:
-- `nodes.last_heartbeat_seq` is claimed only upwards, in the heartbeat's own transaction. Rows
-- now go to the end of the table; (node_id, at) answers per-node reads and (at) retention.
CREATE TABLE heartbeats_log (
    node_id         TEXT NOT NULL REFERENCES nodes (id),
    sequence        INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    load_average_1m REAL,
    agent_version   TEXT NOT NULL
);
INSERT INTO heartbeats_log (node_id, sequence, at, load_average_1m, agent_version)
    SELECT node_id, sequence, at, load_average_1m, agent_version FROM heartbeats ORDER BY at;
DROP TABLE heartbeats;
ALTER TABLE heartbeats_log RENAME TO heartbeats;
CREATE INDEX heartbeats_by_time ON heartbeats (node_id, at);
CREATE INDEX heartbeats_by_at ON heartbeats (at);
