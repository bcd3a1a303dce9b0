-- owner: store
-- bcconnect store schema, one text for both dialects (SQLite runs it as bcconnect.store._dialect renders it).
-- Logical time t: every write transaction takes the next t from store_clock;
-- a version row is valid for t <= T < t_end (t_end NULL while current), so any past T can be searched again.
CREATE TABLE store_clock (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    t BIGINT NOT NULL,
    vid BIGINT NOT NULL
);
INSERT INTO store_clock (id, t, vid) VALUES (1, 0, 0);

CREATE TABLE resource_versions (
    vid BIGINT PRIMARY KEY,
    res_type TEXT NOT NULL,
    res_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    t BIGINT NOT NULL,
    t_end BIGINT,
    last_updated TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    deleted SMALLINT NOT NULL,
    body BYTEA,
    UNIQUE (res_type, res_id, version)
);
CREATE INDEX resource_versions_type_id ON resource_versions (res_type, res_id, t);

CREATE TABLE resources (
    res_type TEXT NOT NULL,
    res_id TEXT NOT NULL,
    vid BIGINT NOT NULL REFERENCES resource_versions (vid),
    version BIGINT NOT NULL,
    t BIGINT NOT NULL,
    last_updated TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    compartment TEXT,
    source TEXT,
    deleted SMALLINT NOT NULL,
    PRIMARY KEY (res_type, res_id)
);
CREATE INDEX resources_compartment ON resources (compartment);

CREATE TABLE idx_token (
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT,
    code TEXT,
    hash_value BIGINT NOT NULL,
    hash_sys_value BIGINT NOT NULL,
    hash_sys BIGINT NOT NULL,
    text TEXT
);
CREATE INDEX idx_token_value ON idx_token (hash_value, vid);
CREATE INDEX idx_token_sys_value ON idx_token (hash_sys_value, vid);
CREATE INDEX idx_token_sys ON idx_token (hash_sys, vid);
CREATE INDEX idx_token_vid ON idx_token (vid, param);

CREATE TABLE idx_string (
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL,
    param TEXT NOT NULL,
    norm TEXT COLLATE "C" NOT NULL,
    exact TEXT NOT NULL
);
CREATE INDEX idx_string_norm ON idx_string (res_type, param, norm);
CREATE INDEX idx_string_vid ON idx_string (vid, param);

CREATE TABLE idx_date (
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL,
    param TEXT NOT NULL,
    low BIGINT NOT NULL,
    high BIGINT NOT NULL
);
CREATE INDEX idx_date_low ON idx_date (res_type, param, low);
CREATE INDEX idx_date_vid ON idx_date (vid, param);

CREATE TABLE idx_reference (
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL,
    param TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    url TEXT NOT NULL
);
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type, res_type, param);
CREATE INDEX idx_reference_vid ON idx_reference (vid, param);

CREATE TABLE idx_quantity (
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT,
    code TEXT,
    value DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_quantity_value ON idx_quantity (res_type, param, value);
CREATE INDEX idx_quantity_vid ON idx_quantity (vid, param);

CREATE TABLE idx_uri (
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL,
    param TEXT NOT NULL,
    uri TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_uri_uri ON idx_uri (res_type, param, uri);
CREATE INDEX idx_uri_vid ON idx_uri (vid, param);

-- the patient compartment (Blaze style): which versions belong to which Patient; answers $everything
CREATE TABLE patient_compartment (
    patient_id TEXT NOT NULL,
    vid BIGINT NOT NULL,
    res_type TEXT NOT NULL
);
CREATE INDEX patient_compartment_patient ON patient_compartment (patient_id, res_type, vid);

CREATE TABLE raw_records (
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    record_type TEXT NOT NULL,
    version TEXT,
    content_hash TEXT NOT NULL,
    payload BYTEA NOT NULL,
    received_at TEXT NOT NULL,
    last_updated TEXT,
    deleted SMALLINT NOT NULL,
    PRIMARY KEY (source, source_key)
);

CREATE TABLE cursors (
    adapter TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE quarantine (
    id BIGSERIAL PRIMARY KEY,
    adapter TEXT NOT NULL,
    source_key TEXT NOT NULL,
    record_type TEXT NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT NOT NULL,
    mapping_id TEXT,
    mapping_version TEXT,
    payload BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    resolved_at TEXT,
    replay_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX quarantine_open ON quarantine (adapter, resolved_at, id);
