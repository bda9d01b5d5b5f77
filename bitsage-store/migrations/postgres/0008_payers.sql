-- Paying accounts (funded jobs): local credit and Stark public key (set by an operator,
-- without a chain), and the reservations of their jobs. Amounts are exact u256.
CREATE TABLE payers (
    account TEXT PRIMARY KEY,
    public_key TEXT,
    credit NUMERIC(78, 0) NOT NULL,
    reserved NUMERIC(78, 0) NOT NULL,
    unsettled NUMERIC(78, 0) NOT NULL,
    spent NUMERIC(78, 0) NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- The account a job's payment is reserved from (NULL: an uncharged job).
ALTER TABLE jobs ADD COLUMN payer TEXT;
CREATE INDEX jobs_payer ON jobs (payer);
