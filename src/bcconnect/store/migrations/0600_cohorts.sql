-- owner: cohorts
-- Computed population cohorts. One row per cohort in cohort_runs (the last computation: its definition as
-- JSON, when, how many members, how many people the national data opt-out and objections removed), its members
-- (golden person ids) in cohort_members with the facts the cohort page groups by, and cohort_opt_out: a cache of
-- the configured national data opt-out list (replaced whole at each load, never written onto a person's record).
CREATE TABLE IF NOT EXISTS cohort_runs (
    group_id          TEXT PRIMARY KEY,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL,
    definition        TEXT NOT NULL,
    computed_at       TEXT NOT NULL,
    version           INTEGER NOT NULL,
    member_count      INTEGER NOT NULL,
    removed_type1     INTEGER NOT NULL,
    removed_type2     INTEGER NOT NULL,
    removed_objection INTEGER NOT NULL,
    elapsed_ms        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cohort_members (
    group_id   TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    nhs_number TEXT,
    borough    TEXT,
    practice   TEXT,
    PRIMARY KEY (group_id, person_id)
);
CREATE INDEX IF NOT EXISTS cohort_members_nhs ON cohort_members (nhs_number);
CREATE TABLE IF NOT EXISTS cohort_opt_out (
    nhs_number   TEXT PRIMARY KEY,
    opt_out_type TEXT NOT NULL,
    loaded_at    TEXT NOT NULL
);
