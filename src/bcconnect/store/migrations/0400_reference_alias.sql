-- owner: store
-- The person-centred view. reference_alias: ids the view treats as one resource when matching references
-- (every source Patient of a person and the person's golden Patient map to the golden id, which maps to
-- itself), so patient=/subject=, _include, _revinclude and chains agree with the references as served.
-- Written by the patient index (through store functions) when it settles a person.
CREATE TABLE reference_alias (
    res_type TEXT NOT NULL,
    member_id TEXT NOT NULL,
    canonical_id TEXT NOT NULL,
    PRIMARY KEY (res_type, member_id)
);
CREATE INDEX reference_alias_canonical ON reference_alias (res_type, canonical_id);
