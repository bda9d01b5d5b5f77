-- Incidents (the status banner and its history), the watched conditions of automatic ones,
-- and feature flags set at runtime.

CREATE TABLE incidents (
    id         UUID PRIMARY KEY,
    status     TEXT NOT NULL,
    condition  TEXT,
    opened_at  TIMESTAMPTZ NOT NULL,
    incident   JSONB NOT NULL
);
CREATE INDEX incidents_by_time ON incidents (opened_at, id);
-- At most one open incident per watched condition, whichever coordinator opens it.
CREATE UNIQUE INDEX incidents_one_open_per_condition ON incidents (condition)
    WHERE status = 'open' AND condition IS NOT NULL;

CREATE TABLE incident_conditions (
    condition TEXT PRIMARY KEY,
    since     TIMESTAMPTZ NOT NULL
);

CREATE TABLE feature_flags (
    flag    TEXT PRIMARY KEY,
    enabled BOOLEAN NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  TIMESTAMPTZ NOT NULL
);
