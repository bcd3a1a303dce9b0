"""Freshness of each source: the one definition of "last successful sync" and "stale".

A source's last successful sync is the ``updated_at`` of its row in ``cursors``: written with every committed
page (in the page's transaction) and again by :func:`mark_synced` when a sync run ends successfully, so a quiet
source that answered "nothing new" stays fresh. A source is stale when that moment is older than its staleness
limit, or when it has never synced. The view's Bundle extension and header and ``bcconnect status`` all read it
through :func:`source_freshness`.

Read from a streaming replica (``[store] read_url``), the same row is the replica's copy, so a source's age is
measured against what the replica has replayed and can only be older (a sync the primary committed but the replica
has not replayed is not counted). :func:`replica_lag_seconds` states how far behind the replica is; every source
read there carries it, and is stale also when the lag alone passes its limit (what the replica misses is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bcconnect.store._resources import now_instant
from bcconnect.store._tx import Tx


@dataclass(frozen=True, slots=True)
class SourceFreshness:
    """One source's last successful sync, its age when asked, and whether it is past its staleness limit."""

    source: str
    ods_code: str | None
    last_sync: str | None
    age_seconds: float | None
    limit_seconds: float
    stale: bool
    #: how far the replica this was read from is behind the primary (None: read from the primary itself)
    replica_lag_seconds: float | None = None


def mark_synced(tx: Tx, adapter: str) -> None:
    """Record that a sync of ``adapter`` ended successfully now (a source that never delivered a page has no row)."""
    tx.execute("UPDATE cursors SET updated_at = ? WHERE adapter = ?", (now_instant(), adapter))


#: on a standby: whether the WAL receiver streams, whether it has replayed all it received, and the age of the
#: last transaction it replayed; on a primary only the first column is read (false)
_REPLICA_STATE = (
    "SELECT pg_is_in_recovery(),"
    " EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),"
    " pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)


def replica_lag_seconds(tx: Tx) -> float | None:
    """How many seconds of the primary's changes this database has not applied; None on a primary or SQLite.

    A standby that streams and has replayed everything it received is current: 0. Otherwise (replay behind
    what arrived, paused, or the stream to the primary down) the lag is the age of the last transaction it
    replayed — an upper bound, never an understatement.
    """
    if tx.dialect != "postgresql":
        return None
    row = tx.query_one(_REPLICA_STATE)
    if row is None or not row[0]:
        return None
    streaming, caught_up, replay_age = bool(row[1]), bool(row[2]), row[3]
    if streaming and caught_up:
        return 0.0
    return max(0.0, float(replay_age)) if replay_age is not None else float("inf")


def _parse(instant: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_stale(last_sync: str | None, limit_seconds: float, now: datetime) -> tuple[float | None, bool]:
    """The age of ``last_sync`` at ``now`` in seconds, and whether that makes the source stale.

    >>> now = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    >>> is_stale("2026-11-22T10:30:00Z", 3600, now), is_stale("2026-11-22T09:00:00Z", 3600, now)
    ((1800.0, False), (7200.0, True))
    >>> is_stale(None, 3600, now)
    (None, True)
    """
    moment = _parse(last_sync) if last_sync else None
    age = (now - moment).total_seconds() if moment else None
    return age, age is None or age > limit_seconds


def source_freshness(
    tx: Tx,
    *,
    ods_codes: Mapping[str, str],
    limits: Mapping[str, float],
    default_limit: float,
    now: datetime | None = None,
    replica: bool = False,
) -> tuple[SourceFreshness, ...]:
    """Freshness of every source that has synced, and of every configured source (never synced = stale).

    ``replica``: ``tx`` reads a streaming replica (:attr:`Store.is_replica`), so its lag is folded in.
    """
    now = now or datetime.now(UTC)
    synced = {str(r[0]): str(r[1]) for r in tx.query("SELECT adapter, updated_at FROM cursors ORDER BY adapter")}
    lag = replica_lag_seconds(tx) if replica else None
    out = []
    for source in sorted(set(synced) | set(ods_codes)):
        last = synced.get(source)
        limit = limits.get(source, default_limit)
        age, stale = is_stale(last, limit, now)
        stale = stale or (lag is not None and lag > limit)
        ods = ods_codes.get(source) or (source.upper() if len(source) == 3 else None)
        out.append(SourceFreshness(source, ods, last, age, limit, stale, lag))
    return tuple(out)
