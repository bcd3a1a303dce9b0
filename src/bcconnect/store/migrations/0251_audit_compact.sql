-- owner: security
-- Compact audit storage: each event's JSON is kept deflated (zlib with a preset dictionary of the AuditEvent
-- shape, a format byte first) in body_z, and body is left empty for new events. The chain hash still covers
-- the exact JSON, so verification inflates and hashes what the event says. Events written before keep
-- their text body. BYTEA is a byte string on PostgreSQL; SQLite stores the bytes as written.
ALTER TABLE audit_events ADD COLUMN body_z BYTEA;
