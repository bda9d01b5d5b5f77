-- When the node's wallet account signature was checked on chain (unix micros); NULL: the
-- wallet is unverified (named by the node, not proven).
ALTER TABLE nodes ADD COLUMN wallet_proven_at INTEGER;
