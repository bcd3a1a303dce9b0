-- owner: cohorts
-- The cohort facts read model: per person, the compact facts the cohort rules look at, kept up to date from what
-- changed in the view since a cursor (written in the same transaction as the facts it produced), so computing the
-- cohorts reads no JSON. Facts are keyed by the Patient id a record names (a trust's source Patient); which
-- person that is comes from the golden Patients (cohort_fact_patient), so a merge or an unmerge re-keys nothing.
-- People in the objection register have no facts here (the view never hands their records to a population use).
CREATE TABLE cohort_fact_person (
    person_id  TEXT PRIMARY KEY,
    nhs_number TEXT,
    birth_date TEXT,
    district   TEXT,
    borough    TEXT,
    practice   TEXT
);
CREATE TABLE cohort_fact_patient (
    patient_id TEXT PRIMARY KEY,
    person_id  TEXT NOT NULL
);
CREATE INDEX cohort_fact_patient_person ON cohort_fact_patient (person_id, patient_id);
-- one row per SNOMED CT code of a Condition that counts (current, not refuted or entered in error)
CREATE TABLE cohort_fact_condition (
    res_id     TEXT NOT NULL,
    code       TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (res_id, code)
);
CREATE INDEX cohort_fact_condition_patient ON cohort_fact_condition (patient_id, code);
-- one row per emergency stay or A&E attendance: the period in microseconds since 1970 (UTC; an open end is the
-- far future) and the trust (adapter) that sent it
CREATE TABLE cohort_fact_encounter (
    res_id     TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    start_us   BIGINT NOT NULL,
    end_us     BIGINT NOT NULL,
    trust      TEXT
);
CREATE INDEX cohort_fact_encounter_window ON cohort_fact_encounter (kind, start_us, patient_id);
CREATE INDEX cohort_fact_encounter_patient ON cohort_fact_encounter (patient_id, kind);
-- where the facts of each resource type have been brought up to: the last (t, id) applied
CREATE TABLE cohort_fact_cursor (
    res_type TEXT PRIMARY KEY,
    t        BIGINT NOT NULL,
    res_id   TEXT NOT NULL
);
-- the Patient ids (golden and source) of the people objecting when the facts were last settled: one who
-- withdraws the objection is read again in full
CREATE TABLE cohort_fact_withheld (
    patient_id TEXT PRIMARY KEY
);
-- the condition code sets of the definitions being computed (replaced in each computation's transaction)
CREATE TABLE cohort_code_sets (
    code     TEXT NOT NULL,
    set_name TEXT NOT NULL,
    PRIMARY KEY (code, set_name)
);
-- working rows of one computation (its run key): per-person event counts, the objectors left out; deleted
-- before the computation's transaction commits
CREATE TABLE cohort_eval_scratch (
    run_key   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    person_id TEXT NOT NULL,
    value     BIGINT NOT NULL
);
CREATE INDEX cohort_eval_scratch_kind ON cohort_eval_scratch (run_key, kind, person_id);
