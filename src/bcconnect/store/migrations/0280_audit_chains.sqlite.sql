-- owner: security
-- two texts: PostgreSQL numbers audit events from a sequence, so writers in several processes share no row;
-- SQLite has one writer at a time and numbers them itself (and has no sequences).
-- A chain per writer: see the PostgreSQL text for the design.
CREATE TABLE IF NOT EXISTS audit_chains (
    chain      TEXT PRIMARY KEY,
    writer     TEXT NOT NULL,
    link       INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    base_link  INTEGER NOT NULL DEFAULT 0,
    base_hash  TEXT NOT NULL,
    month      INTEGER NOT NULL DEFAULT 0,
    opened_at  TEXT NOT NULL,
    written_at TEXT NOT NULL,
    closed_at  TEXT
);
INSERT INTO audit_chains (chain, writer, link, hash, base_link, base_hash, month, opened_at, written_at)
    SELECT 'main', 'shared', h.seq, h.hash, COALESCE(b.seq, 0), COALESCE(b.hash, '0000000000000000000000000000000000000000000000000000000000000000'), 0, '', ''
    FROM audit_chain_head h LEFT JOIN audit_chain_base b ON b.id = 1;
ALTER TABLE audit_events ADD COLUMN chain TEXT NOT NULL DEFAULT 'main';
ALTER TABLE audit_events ADD COLUMN link INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN month INTEGER NOT NULL DEFAULT 0;
UPDATE audit_events SET link = seq,
    month = CASE WHEN recorded GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]*'
            THEN CAST(substr(recorded, 1, 4) || substr(recorded, 6, 2) AS INTEGER) ELSE 0 END;
UPDATE audit_chains SET month = (SELECT COALESCE(MAX(month), 0) FROM audit_events) WHERE chain = 'main';
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_chain_link ON audit_events (chain, link);
CREATE INDEX IF NOT EXISTS audit_events_month ON audit_events (month);
ALTER TABLE audit_event_patients ADD COLUMN month INTEGER NOT NULL DEFAULT 0;
UPDATE audit_event_patients SET month = (SELECT e.month FROM audit_events e WHERE e.seq = audit_event_patients.seq);
DROP TABLE audit_chain_head;
DROP TABLE audit_chain_base;
