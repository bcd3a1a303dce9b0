-- owner: identity
-- Persons whose links changed in the current transaction: their stable id, golden Patient and reference
-- aliases are settled before it commits (identity._persons). Empty between transactions.
CREATE TABLE identity_person_dirty (
    person_id TEXT PRIMARY KEY
);
