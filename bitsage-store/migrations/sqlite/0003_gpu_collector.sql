-- The GPU collector status of each node's latest accepted heartbeat (JSON GpuCollectorStatus)
-- and that heartbeat's receive time, written in the same statement that claims the sequence.
ALTER TABLE nodes ADD COLUMN gpu_collector TEXT;
ALTER TABLE nodes ADD COLUMN gpu_collector_at INTEGER;
