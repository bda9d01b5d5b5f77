-- The outbox of domain events, written in the same transaction as each change. Writers take
-- a transaction-scoped advisory lock just before appending (as their last statement), so ids
-- are assigned in commit order: a reader that saw id n never later finds a smaller new one.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX events_at ON events (at);
