-- owner: identity
-- Re-clustering in the patient index. Other given names (middle names) are compared with the first given name
-- of other records (a middle name used as the first name). When evidence joins two persons, the absorbed
-- person is recorded as merged into the survivor, so its id can redirect and the join can be traced.
ALTER TABLE identity_record ADD COLUMN given_other TEXT;

CREATE TABLE IF NOT EXISTS identity_person_merge (
    absorbed_person_id TEXT PRIMARY KEY,
    into_person_id TEXT NOT NULL,
    via_patient_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS identity_person_merge_into ON identity_person_merge (into_person_id);
