-- Per-node job counts (`completed_by = $n OR lease_node = $n`, with or without a status) are
-- served by these two indexes (a BitmapOr) instead of a scan of `jobs`.
CREATE INDEX jobs_by_completer ON jobs (completed_by, status);
CREATE INDEX jobs_by_lease_node ON jobs (lease_node, status);
