"""Freshness of each source: the one definition of "last successful sync" and "stale".

A source's last successful sync is the ``updated_at`` of its row in ``cursors``: written with every committed
page (in the page's transaction) and again by :func:`mark_synced` when a sync run ends successfully, so a quiet
source that answered "nothing new" stays fresh. A source is stale when that moment is older than its staleness
limit, or when it has never synced. The view's Bundle extension and header and ``bcconnect status`` all read it
through :func:`source_freshness`.
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


def mark_synced(tx: Tx, adapter: str) -> None:
    """Record that a sync of ``adapter`` ended successfully now (a source that never delivered a page has no row)."""
    tx.execute("UPDATE cursors SET updated_at = ? WHERE adapter = ?", (now_instant(), adapter))


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
) -> tuple[SourceFreshness, ...]:
    """Freshness of every source that has synced, and of every configured source (never synced = stale)."""
    now = now or datetime.now(UTC)
    synced = {str(r[0]): str(r[1]) for r in tx.query("SELECT adapter, updated_at FROM cursors ORDER BY adapter")}
    out = []
    for source in sorted(set(synced) | set(ods_codes)):
        last = synced.get(source)
        limit = limits.get(source, default_limit)
        age, stale = is_stale(last, limit, now)
        ods = ods_codes.get(source) or (source.upper() if len(source) == 3 else None)
        out.append(SourceFreshness(source, ods, last, age, limit, stale))
    return tuple(out)
