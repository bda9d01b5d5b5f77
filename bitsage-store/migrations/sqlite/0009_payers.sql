-- Paying accounts (funded jobs): local credit and Stark public key (set by an operator,
-- without a chain), and the reservations of their jobs. Amounts are u256 decimal text.
CREATE TABLE payers (
    account TEXT PRIMARY KEY NOT NULL,
    public_key TEXT,
    credit TEXT NOT NULL,
    reserved TEXT NOT NULL,
    unsettled TEXT NOT NULL,
    spent TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
-- The account a job's payment is reserved from (NULL: an uncharged job).
ALTER TABLE jobs ADD COLUMN payer TEXT;
CREATE INDEX jobs_payer ON jobs (payer);
