-- owner: security
-- Rate-limit token buckets shared by every API process: one row per limited key ("user:<id>", "client:<id>",
-- "address:<ip>"). tokens as of updated (Unix seconds); processes take small leases of tokens from a row.
CREATE TABLE IF NOT EXISTS rate_limit_buckets (
    bucket  TEXT PRIMARY KEY,
    tokens  DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
