-- owner: store
-- The current rows of a type in the order they changed: a read model (triage's open referrals and pathway
-- clocks) follows the store by asking for what changed after its cursor (``changed_current``), so it needs
-- the type's current rows by logical time without walking every row.
CREATE INDEX IF NOT EXISTS resources_type_time ON resources (res_type, t, res_id);
