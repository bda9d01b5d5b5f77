-- Per-node job counts (`completed_by = ? OR lease_node = ?`, with or without a status) are
-- served by these two indexes instead of a scan of `jobs`.
CREATE INDEX jobs_by_completer ON jobs (completed_by, status);
CREATE INDEX jobs_by_lease_node ON jobs (lease_node, status);
