-- owner: bulk
-- FHIR Bulk Data exports: one row per kick-off, worked by a background task in any API process. Everything a
-- worker needs to (re)run the export is here (the caller's grant, the parameters, the store snapshot `at_t`),
-- so a restart resumes it; `lease_owner`/`lease_until` (Unix seconds) keep two processes off one job.
CREATE TABLE IF NOT EXISTS bulk_jobs (
    job_id           TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    level            TEXT NOT NULL,
    group_id         TEXT,
    request_url      TEXT NOT NULL,
    parameters       TEXT NOT NULL,
    access           TEXT NOT NULL,
    client_id        TEXT,
    user_id          TEXT,
    at_t             BIGINT NOT NULL,
    transaction_time TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    finished_at      DOUBLE PRECISION,
    expires_at       DOUBLE PRECISION,
    progress         TEXT NOT NULL DEFAULT '{}',
    manifest         TEXT,
    error            TEXT,
    lease_owner      TEXT,
    lease_until      DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS bulk_jobs_status ON bulk_jobs (status);
-- One row per NDJSON file a job wrote (outputs and the error file), in the order written.
CREATE TABLE IF NOT EXISTS bulk_files (
    job_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    kind          TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    line_count    BIGINT NOT NULL,
    byte_count    BIGINT NOT NULL,
    PRIMARY KEY (job_id, name)
);
