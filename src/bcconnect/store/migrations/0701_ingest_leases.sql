-- owner: ingest
-- Which ingest worker owns each adapter now. A worker renews its lease well before it expires; a worker that
-- dies stops renewing, and another takes the adapter over once expires_at (Unix seconds) has passed.
CREATE TABLE IF NOT EXISTS ingest_leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    taken_at   DOUBLE PRECISION NOT NULL
);
