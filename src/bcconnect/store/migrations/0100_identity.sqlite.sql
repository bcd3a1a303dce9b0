-- owner: identity
-- The patient index (identity). Normalised identity fields of each source Patient, its blocking keys, the
-- persons, links with state and history, the review queue and merges. At most one MATCH per source record is
-- enforced by a unique partial index, so two concurrent transactions cannot both link one record.
CREATE TABLE identity_record (
    patient_id TEXT PRIMARY KEY,
    ods_code TEXT,
    source_key TEXT,
    nhs_number TEXT,
    verification TEXT,
    mrn TEXT,
    given TEXT,
    family TEXT,
    birth_date TEXT,
    sex TEXT,
    postcode TEXT,
    phone TEXT,
    replaced_by TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX identity_record_nhs ON identity_record (nhs_number);
CREATE INDEX identity_record_mrn ON identity_record (ods_code, mrn);

CREATE TABLE identity_block (
    block_key TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (block_key, patient_id)
);
CREATE INDEX identity_block_patient ON identity_block (patient_id);

CREATE TABLE identity_person (
    person_id TEXT PRIMARY KEY,
    founded_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE identity_link (
    patient_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    score REAL,
    rule TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (patient_id, person_id)
);
CREATE UNIQUE INDEX identity_link_one_match ON identity_link (patient_id) WHERE state = 'MATCH';
CREATE INDEX identity_link_person ON identity_link (person_id, state);

CREATE TABLE identity_link_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT,
    source TEXT,
    score REAL,
    rule TEXT,
    rules_version TEXT,
    actor TEXT NOT NULL,
    reason TEXT,
    at TEXT NOT NULL
);
CREATE INDEX identity_link_history_patient ON identity_link_history (patient_id, seq);

CREATE TABLE identity_review (
    review_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    via_patient_id TEXT,
    score REAL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT
);
CREATE UNIQUE INDEX identity_review_open ON identity_review (patient_id, person_id) WHERE status = 'open';
CREATE INDEX identity_review_status ON identity_review (status, created_at);

CREATE TABLE identity_merge (
    merge_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    target_patient_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    prior_links TEXT NOT NULL,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    undone_at TEXT,
    undone_by TEXT
);
CREATE UNIQUE INDEX identity_merge_active ON identity_merge (patient_id) WHERE status = 'active';
CREATE INDEX identity_merge_target ON identity_merge (target_patient_id, status);
