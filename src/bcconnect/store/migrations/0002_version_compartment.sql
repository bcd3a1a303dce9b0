-- owner: store
-- Each version records the compartment (source Patient) id it was written with, so any read can say which
-- patients it touched (for the audit trail) without parsing the body.
ALTER TABLE resource_versions ADD COLUMN compartment TEXT;
