-- Admins' marks that a node's payout period (a UTC month) is ready to pay.
CREATE TABLE payout_marks (
    node_id   TEXT NOT NULL,
    period    TEXT NOT NULL,              -- YYYY-MM
    marked_by TEXT NOT NULL,
    marked_at INTEGER NOT NULL,
    net       TEXT NOT NULL,              -- decimal base units
    PRIMARY KEY (node_id, period)
) WITHOUT ROWID;
