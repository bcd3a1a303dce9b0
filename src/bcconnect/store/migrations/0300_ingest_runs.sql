-- owner: ingest
-- One row per sync of one adapter: what `bcconnect status` reports (last success, error rate, counts).
CREATE TABLE IF NOT EXISTS ingest_runs (
    run_id        TEXT PRIMARY KEY,
    adapter       TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    ok            INTEGER,
    fetched       INTEGER NOT NULL DEFAULT 0,
    new_records   INTEGER NOT NULL DEFAULT 0,
    changed       INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    quarantined   INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS ingest_runs_adapter_started ON ingest_runs (adapter, started_at);
