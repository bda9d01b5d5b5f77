-- The last accepted heartbeat sequence per node, so a heartbeat is claimed (replay check) and
-- stored without scanning the heartbeats table.
ALTER TABLE nodes ADD COLUMN last_heartbeat_seq INTEGER;
UPDATE nodes SET last_heartbeat_seq = (SELECT MAX(sequence) FROM heartbeats WHERE node_id = nodes.id);
