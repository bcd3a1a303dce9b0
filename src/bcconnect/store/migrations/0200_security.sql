-- owner: security
-- Security and information governance: the hash-chained audit trail and the patient objection register.

-- The head of the audit chain: one row. Every append first UPDATEs it, which takes the row lock (PostgreSQL)
-- or the write lock (SQLite), so concurrent appends form one linear chain.
CREATE TABLE IF NOT EXISTS audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- One AuditEvent per request. hash = sha256(seq "|" prev_hash "|" body); body is the AuditEvent JSON as hashed.
CREATE TABLE IF NOT EXISTS audit_events (
    seq       BIGINT PRIMARY KEY,
    event_id  TEXT NOT NULL UNIQUE,
    recorded  TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    body      TEXT NOT NULL
);

-- Which patients each audit event is about ("Patient/<id>"), for AuditEvent?patient=…
CREATE TABLE IF NOT EXISTS audit_event_patients (
    seq     BIGINT NOT NULL REFERENCES audit_events (seq),
    patient TEXT NOT NULL,
    PRIMARY KEY (patient, seq)
);

-- Patients who object to the shared care record. subject: a 10-digit NHS number, or "Patient/<id>" when the
-- source gave no NHS number. origin: "manual" (bcconnect objection add) or the source resource
-- ("Consent/<id>", "Flag/<id>") it was read from, so a withdrawal at the source removes exactly its row.
CREATE TABLE IF NOT EXISTS patient_objections (
    subject     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    note        TEXT,
    PRIMARY KEY (subject, origin)
);
CREATE INDEX IF NOT EXISTS patient_objections_origin ON patient_objections (origin);
