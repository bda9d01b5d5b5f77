-- The network's reputation of each node (R 0–100 and its explanation, recomputed by the
-- coordinator), the facts it is computed from, and drains with their maintenance windows.

CREATE TABLE node_facts (
    id      BIGSERIAL PRIMARY KEY,
    node_id TEXT NOT NULL,
    fact    TEXT NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX node_facts_by_node ON node_facts (node_id, at);
CREATE INDEX node_facts_by_time ON node_facts (at);

ALTER TABLE nodes ADD COLUMN reputation_score INTEGER;
ALTER TABLE nodes ADD COLUMN reputation JSONB;
CREATE INDEX nodes_by_reputation ON nodes (reputation_score);

ALTER TABLE nodes ADD COLUMN drain JSONB;

-- Time a node was drained for maintenance (not counted against its uptime).
CREATE TABLE node_maintenance (
    node_id    TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ends_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node_id, started_at)
);
