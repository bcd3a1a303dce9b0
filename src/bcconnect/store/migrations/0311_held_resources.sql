-- owner: ingest
-- Clinical resources whose Patient is missing or quarantined: kept here (never served) until the Patient is
-- written, then released into the store in the same transaction as that Patient.
CREATE TABLE IF NOT EXISTS held_resources (
    res_type    TEXT NOT NULL,
    res_id      TEXT NOT NULL,
    adapter     TEXT NOT NULL,
    source_key  TEXT NOT NULL,
    patient_id  TEXT NOT NULL,
    body        TEXT NOT NULL,
    held_at     TEXT NOT NULL,
    PRIMARY KEY (res_type, res_id)
);
CREATE INDEX IF NOT EXISTS held_resources_patient ON held_resources (patient_id);
CREATE INDEX IF NOT EXISTS held_resources_adapter ON held_resources (adapter);
