-- owner: store
-- The person-centred view's duplicate collapse, computed once per version: a fact two trusts both sent is
-- served once in a person's $everything. fact_key is the view's key of what makes the fact (NULL: a version
-- that is never collapsed, kept so it is not keyed again); ods is the trust it came from ('' when unknown).
-- Versions never change, so a row is written once, the first time its person is read after it arrived.
CREATE TABLE same_fact_key (
    vid BIGINT PRIMARY KEY,
    fact_key TEXT,
    ods TEXT NOT NULL
);
CREATE INDEX same_fact_key_key ON same_fact_key (fact_key);
