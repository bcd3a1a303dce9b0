-- owner: ingest
-- How each sync ended beyond ok/failed: OK, DEGRADED (ran to the end but past a quality threshold) or FAILED,
-- the one-line reason, and how many resources were held waiting for their Patient.
ALTER TABLE ingest_runs ADD COLUMN status TEXT;
ALTER TABLE ingest_runs ADD COLUMN detail TEXT;
ALTER TABLE ingest_runs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
