-- owner: ingest
-- The source timestamp of the record each resource was last written from. A delivery that arrives out of
-- order (an older HL7 message after a newer one about the same resource) must not overwrite newer content.
CREATE TABLE IF NOT EXISTS source_times (
    res_type     TEXT NOT NULL,
    res_id       TEXT NOT NULL,
    source_time  TEXT NOT NULL,
    PRIMARY KEY (res_type, res_id)
);
