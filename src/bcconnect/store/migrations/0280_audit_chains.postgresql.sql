-- owner: security
-- two texts: PostgreSQL numbers audit events from a sequence, so writers in several processes share no row;
-- SQLite has one writer at a time and numbers them itself.
-- A chain per writer: each API process (and the shared chain 'main' for operator actions and the trail written
-- before this migration) appends to its own hash chain, so appends from two processes never wait on one row.
-- A writer's chain is a segment: opened with a signed checkpoint at link 0, closed (a final signed checkpoint)
-- when it rotates (a new month, a size or an age bound) or when its process stops. base_link/base_hash: the last
-- link retention dropped (the stored chain starts after it). month: the newest month the chain has written
-- (yyyymm), which a chain never goes back from, so dropping whole months always removes a prefix of every chain.
CREATE TABLE IF NOT EXISTS audit_chains (
    chain      TEXT PRIMARY KEY,
    writer     TEXT NOT NULL,
    link       BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    base_link  BIGINT NOT NULL DEFAULT 0,
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
ALTER TABLE audit_events ADD COLUMN link BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN month INTEGER NOT NULL DEFAULT 0;
UPDATE audit_events SET link = seq,
    month = CASE WHEN recorded ~ '^[0-9]{4}-[0-9]{2}' THEN CAST(substr(recorded, 1, 4) || substr(recorded, 6, 2) AS INTEGER)
            ELSE 0 END;
UPDATE audit_chains SET month = (SELECT COALESCE(MAX(month), 0) FROM audit_events) WHERE chain = 'main';
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_chain_link ON audit_events (chain, link);
CREATE INDEX IF NOT EXISTS audit_events_month ON audit_events (month);
ALTER TABLE audit_event_patients ADD COLUMN month INTEGER NOT NULL DEFAULT 0;
UPDATE audit_event_patients SET month = e.month FROM audit_events e WHERE e.seq = audit_event_patients.seq;
CREATE SEQUENCE IF NOT EXISTS audit_event_seq;
SELECT setval('audit_event_seq', GREATEST((SELECT COALESCE(MAX(seq), 0) FROM audit_events), (SELECT link FROM audit_chains WHERE chain = 'main')) + 1, false);
DROP TABLE audit_chain_head;
DROP TABLE audit_chain_base;
