-- owner: triage
-- The security labels (system|code, space-separated) of each row's resource: a caller's hidden labels are
-- decided from them directly, so only rows that point somewhere (screen_check) need the view's predicate.
ALTER TABLE triage_referral ADD COLUMN labels TEXT NOT NULL DEFAULT '';
ALTER TABLE triage_episode ADD COLUMN labels TEXT NOT NULL DEFAULT '';
ALTER TABLE triage_appointment ADD COLUMN labels TEXT NOT NULL DEFAULT '';
