-- owner: store
-- Change counters: a row per family of facts (and shard), bumped in the same transaction as a write that
-- changes those facts. A process that caches facts derived from them (the security screen's objectors and
-- persons) reads the counters once per request, in the request's own snapshot: an unchanged sum means the
-- cached facts are still the ones that snapshot would compute, in this process or any other. Shards spread
-- concurrent writers of one family over several rows (PostgreSQL holds a row lock until commit).
CREATE TABLE IF NOT EXISTS store_change_counters (
    family  TEXT NOT NULL,
    shard   INTEGER NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (family, shard)
);
