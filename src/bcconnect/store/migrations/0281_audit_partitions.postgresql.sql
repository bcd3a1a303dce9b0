-- owner: security
-- two texts: PostgreSQL keeps the audit trail in monthly partitions (declarative RANGE partitioning on the
-- month an event is stored in, yyyymm), so retention drops a whole month as one partition instead of deleting
-- a million rows; SQLite keeps its one table (its month column and index let retention delete a month).
-- Partitions are made ahead by the writers (this month and the next, whenever a segment opens) and by
-- `bcconnect audit maintain`; an event whose month has no partition lands in the default partition, which
-- /metrics and `audit verify` report, and audit_ensure_month() moves out when it makes that month's partition.
ALTER TABLE audit_event_patients RENAME TO audit_event_patients_flat;
ALTER TABLE audit_events RENAME TO audit_events_flat;
ALTER TABLE audit_events_flat RENAME CONSTRAINT audit_events_pkey TO audit_events_flat_pkey;
ALTER TABLE audit_event_patients_flat RENAME CONSTRAINT audit_event_patients_pkey TO audit_event_patients_flat_pkey;
DROP INDEX IF EXISTS audit_events_chain_link;
DROP INDEX IF EXISTS audit_events_month;

CREATE TABLE audit_events (
    seq       BIGINT NOT NULL,
    chain     TEXT NOT NULL,
    link      BIGINT NOT NULL,
    month     INTEGER NOT NULL,
    event_id  TEXT NOT NULL,
    recorded  TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    body      TEXT NOT NULL,
    body_z    BYTEA,
    PRIMARY KEY (seq, month)
) PARTITION BY RANGE (month);
CREATE UNIQUE INDEX audit_events_chain_link ON audit_events (chain, link, month);
CREATE INDEX audit_events_by_seq ON audit_events (seq);
CREATE TABLE audit_event_patients (
    seq     BIGINT NOT NULL,
    patient TEXT NOT NULL,
    month   INTEGER NOT NULL,
    PRIMARY KEY (patient, seq, month)
) PARTITION BY RANGE (month);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
CREATE TABLE audit_event_patients_default PARTITION OF audit_event_patients DEFAULT;

-- The partition of month m (yyyymm) for both tables, made if missing; events of that month found in the default
-- partition are moved into it first. Returns how many events were moved.
CREATE OR REPLACE FUNCTION audit_ensure_month(m INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $fn$
DECLARE
    upper_bound INTEGER := CASE WHEN m % 100 >= 12 THEN (m / 100 + 1) * 100 + 1 ELSE m + 1 END;
    moved INTEGER := 0;
    parent TEXT;
    part TEXT;
    n INTEGER;
BEGIN
    FOREACH parent IN ARRAY ARRAY['audit_events', 'audit_event_patients'] LOOP
        part := parent || '_m' || m;
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, parent);
            EXECUTE format(
                'WITH gone AS (DELETE FROM %I WHERE month = %s RETURNING *) INSERT INTO %I SELECT * FROM gone',
                parent || '_default', m, part);
            GET DIAGNOSTICS n = ROW_COUNT;
            IF parent = 'audit_events' THEN
                moved := n;
            END IF;
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                parent, part, m, upper_bound);
        END IF;
    END LOOP;
    RETURN moved;
END
$fn$;

DO $do$
DECLARE
    m INTEGER;
BEGIN
    FOR m IN SELECT DISTINCT month FROM audit_events_flat LOOP
        PERFORM audit_ensure_month(m);
    END LOOP;
END
$do$;
INSERT INTO audit_events (seq, chain, link, month, event_id, recorded, prev_hash, hash, body, body_z)
    SELECT seq, chain, link, month, event_id, recorded, prev_hash, hash, body, body_z FROM audit_events_flat;
INSERT INTO audit_event_patients (seq, patient, month) SELECT seq, patient, month FROM audit_event_patients_flat;
DROP TABLE audit_event_patients_flat;
DROP TABLE audit_events_flat;
