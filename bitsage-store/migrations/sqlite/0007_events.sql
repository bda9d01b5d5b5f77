-- The outbox of domain events, written in the same transaction as each change. AUTOINCREMENT:
-- ids are never reused, also after retention deleted the newest rows' predecessors (SQLite has
-- one writer, so ids are assigned in commit order).
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_at ON events (at);
