-- owner: security
-- Shipping closed audit segments to a log service, at least once: a row per segment and sink. Before a segment
-- is sent its row is claimed ('sending', attempts + 1, a lease); a confirmed send marks it 'shipped'; a failed one
-- 'failed' with the next attempt's time (exponential backoff). A claim whose lease ran out without an outcome (the
-- process died mid-send) is sent again and counted in `unconfirmed`, so a copy the receiver may hold twice is
-- never silent: each message carries the segment, its links and the attempt number.
CREATE TABLE IF NOT EXISTS audit_shipments (
    chain           TEXT NOT NULL,
    sink            TEXT NOT NULL,
    state           TEXT NOT NULL,
    first_link      BIGINT NOT NULL,
    last_link       BIGINT NOT NULL,
    last_hash       TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    unconfirmed     INTEGER NOT NULL DEFAULT 0,
    claimed_by      TEXT,
    claimed_until   TEXT,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    shipped_at      TEXT,
    PRIMARY KEY (chain, sink)
);
