-- Each node's all-time ledger sums (decimal TEXT: exact u256), updated in the transaction
-- that credits an entry, so an all-time total reads one row instead of summing the ledger.
-- Ledgers that predate this table are summed once, in Rust, when the store opens (SQLite has
-- no exact 256-bit SUM): see SqliteStore::open.
CREATE TABLE earnings_totals (
    node_id TEXT PRIMARY KEY NOT NULL,
    entries INTEGER NOT NULL,
    gross   TEXT NOT NULL,
    fee     TEXT NOT NULL,
    net     TEXT NOT NULL
) WITHOUT ROWID;
