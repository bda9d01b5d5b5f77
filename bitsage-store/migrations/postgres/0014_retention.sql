-- Retention: raw GPU samples are rolled up per device and minute (JSON GpuMinute: per metric
-- min / max / sum / count) before they are deleted; raw heartbeats are deleted by time.

CREATE TABLE gpu_sample_minutes (
    node_id     TEXT NOT NULL,
    device_uuid TEXT NOT NULL,
    minute      BIGINT NOT NULL,
    rollup      JSONB NOT NULL,
    PRIMARY KEY (node_id, device_uuid, minute)
);
CREATE INDEX gpu_sample_minutes_by_minute ON gpu_sample_minutes (minute);
CREATE INDEX heartbeats_by_at ON heartbeats (at);
