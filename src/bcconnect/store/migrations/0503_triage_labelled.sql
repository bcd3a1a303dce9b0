-- owner: triage
-- The few labelled rows of each read-model table, for a caller's screen: without these partial indexes every
-- summary, worklist and mutual-aid answer read each table whole to find the 0.5% of rows with a label
-- (``WHERE labels <> ''``: a scan of every referral, episode and appointment at region size).
CREATE INDEX IF NOT EXISTS triage_referral_labelled ON triage_referral (res_id, labels) WHERE labels <> '';
CREATE INDEX IF NOT EXISTS triage_episode_labelled ON triage_episode (res_id, labels) WHERE labels <> '';
CREATE INDEX IF NOT EXISTS triage_appointment_labelled ON triage_appointment (res_id, labels) WHERE labels <> '';
