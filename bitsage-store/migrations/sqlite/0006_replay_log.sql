-- Signed node messages already accepted (lease, complete, fail), by a digest of their signed
-- bytes, kept until their sent_at could no longer pass the clock-skew check (unix micros).
CREATE TABLE replay_log (
    digest BLOB PRIMARY KEY NOT NULL,
    keep_until INTEGER NOT NULL
);
CREATE INDEX replay_log_keep_until ON replay_log (keep_until);
