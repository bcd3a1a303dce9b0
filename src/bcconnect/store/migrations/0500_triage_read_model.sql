-- owner: triage
-- The triage read model: what the worklist, the waiting-list summary and mutual aid need of every referral
-- (ServiceRequest), RTT pathway part (EpisodeOfCare) and appointment, parsed once when the resource changes
-- instead of on every answer, and each pathway's clock as the RTT rules compute it. Kept current from the
-- store's change feed (triage_cursor: the last (t, id) applied per resource type, written in the transaction
-- that applies it) and rebuildable from nothing. Rows hold the source Patient id (compartment) as stored, never
-- a person id, so identity merges need no update; every answer is screened when it is read.
CREATE TABLE IF NOT EXISTS triage_referral (
    res_id       TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    compartment  TEXT,
    trust        TEXT NOT NULL,
    network      TEXT,
    tfc          TEXT,
    status       TEXT NOT NULL,
    priority     TEXT NOT NULL,
    rank         SMALLINT NOT NULL,
    received     TEXT NOT NULL,
    outcome      TEXT,
    reasons      TEXT NOT NULL,
    awaiting     SMALLINT NOT NULL,
    is_open      SMALLINT NOT NULL,
    labelled     SMALLINT NOT NULL,
    screen_check SMALLINT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_referral_worklist ON triage_referral (network, awaiting, rank, received, res_id);
CREATE INDEX IF NOT EXISTS triage_referral_compartment ON triage_referral (compartment);
CREATE INDEX IF NOT EXISTS triage_referral_check ON triage_referral (screen_check);
CREATE TABLE IF NOT EXISTS triage_episode (
    res_id       TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    compartment  TEXT,
    pathway_key  TEXT NOT NULL,
    trust        TEXT NOT NULL,
    ppi          TEXT,
    status       TEXT NOT NULL,
    start_day    TEXT,
    end_day      TEXT,
    tfc          TEXT,
    referral_ids TEXT NOT NULL,
    events       TEXT NOT NULL,
    fds          TEXT,
    screen_check SMALLINT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_episode_pathway ON triage_episode (pathway_key);
CREATE INDEX IF NOT EXISTS triage_episode_compartment ON triage_episode (compartment);
CREATE INDEX IF NOT EXISTS triage_episode_check ON triage_episode (screen_check);
CREATE TABLE IF NOT EXISTS triage_episode_referral (
    referral_id TEXT NOT NULL,
    episode_id  TEXT NOT NULL,
    PRIMARY KEY (referral_id, episode_id)
);
CREATE INDEX IF NOT EXISTS triage_episode_referral_episode ON triage_episode_referral (episode_id);
CREATE TABLE IF NOT EXISTS triage_appointment (
    res_id       TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    compartment  TEXT,
    trust        TEXT NOT NULL,
    status       TEXT NOT NULL,
    start_at     TEXT,
    cancelled_by TEXT,
    referral_ids TEXT NOT NULL,
    screen_check SMALLINT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_appointment_compartment ON triage_appointment (compartment);
CREATE INDEX IF NOT EXISTS triage_appointment_check ON triage_appointment (screen_check);
CREATE TABLE IF NOT EXISTS triage_appointment_referral (
    referral_id    TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    PRIMARY KEY (referral_id, appointment_id)
);
CREATE INDEX IF NOT EXISTS triage_appointment_referral_appointment ON triage_appointment_referral (appointment_id);
CREATE TABLE IF NOT EXISTS triage_pathway (
    pathway_key  TEXT PRIMARY KEY,
    episode_id   TEXT NOT NULL,
    compartment  TEXT,
    trust        TEXT NOT NULL,
    tfc          TEXT,
    network      TEXT,
    priority     TEXT NOT NULL,
    state        TEXT NOT NULL,
    clock_start  TEXT,
    clock_stop   TEXT,
    stop_code    TEXT,
    providers    TEXT NOT NULL,
    transferred  SMALLINT NOT NULL,
    fds          TEXT,
    referral_ids TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_pathway_waiting ON triage_pathway (state, trust, tfc, clock_start);
CREATE TABLE IF NOT EXISTS triage_pathway_booking (
    pathway_key TEXT NOT NULL,
    day         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_pathway_booking_key ON triage_pathway_booking (pathway_key, day);
CREATE TABLE IF NOT EXISTS triage_cursor (
    res_type TEXT PRIMARY KEY,
    t        BIGINT NOT NULL,
    res_id   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS triage_model (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    built_at    TEXT NOT NULL
);
