-- owner: security
-- Retention: when `bcconnect audit prune` drops the oldest events (after exporting them with a signed
-- checkpoint of the last one), the chain in the store starts after this base: the sequence number and hash of
-- the last dropped event. `audit verify` starts from it and requires a signed checkpoint naming it.
CREATE TABLE IF NOT EXISTS audit_chain_base (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
