-- owner: store
-- Current resources of a type in logical-time order: a read model (the cohorts' facts) follows what changed
-- since its cursor (t, id) with an index range instead of scanning every current resource of the type.
CREATE INDEX IF NOT EXISTS resources_type_t ON resources (res_type, t, res_id);
