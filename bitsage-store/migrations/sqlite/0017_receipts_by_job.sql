-- The console finds a receipt by its job id.
CREATE INDEX receipts_by_job ON receipts (job_id);
