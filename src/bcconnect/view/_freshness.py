"""Freshness: how current each trust's data is, stated with every response that shows a person's data.

The last successful sync of a source is when the ingest pipeline last committed a page for it (the
``updated_at`` of its row in the store's ``cursors`` table, written in the page's transaction). A source whose
last sync is older than its staleness limit is flagged stale. The result goes on the Bundle (``meta.extension``:
a Bundle is a Resource, not a DomainResource, so its extensions live on ``meta``) and in a response header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bcconnect.fhir.constants import BCCONNECT_BASE
from bcconnect.store import Tx

#: extension (on Bundle.meta) with one sub-extension group per source
FRESHNESS_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/source-freshness"
#: response header carrying the same facts: ``RL4=2026-11-22T10:00:00Z;age=60;fresh, RBK=…;stale``
FRESHNESS_HEADER: Final = "x-bcconnect-freshness"


@dataclass(frozen=True, slots=True)
class SourceFreshness:
    """One source's last successful sync, its age when asked, and whether it is past its staleness limit."""

    source: str
    ods_code: str | None
    last_sync: str | None
    age_seconds: float | None
    limit_seconds: float
    stale: bool


def _parse(instant: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        moment = _parse(last) if last else None
        age = (now - moment).total_seconds() if moment else None
        limit = limits.get(source, default_limit)
        ods = ods_codes.get(source) or (source.upper() if len(source) == 3 else None)
        out.append(SourceFreshness(source, ods, last, age, limit, age is None or age > limit))
    return tuple(out)


def freshness_extension(items: tuple[SourceFreshness, ...]) -> dict[str, Any]:
    """The Bundle.meta extension stating each source's freshness."""
    groups = []
    for item in items:
        parts: list[dict[str, Any]] = [{"url": "source", "valueString": item.source}]
        if item.ods_code:
            parts.append({"url": "ods", "valueString": item.ods_code})
        if item.last_sync:
            parts.append({"url": "lastSync", "valueInstant": item.last_sync})
        parts.append({"url": "stale", "valueBoolean": item.stale})
        groups.append({"url": FRESHNESS_EXTENSION, "extension": parts})
    return {"extension": groups}


def freshness_header(items: tuple[SourceFreshness, ...]) -> str:
    """The response header value: one ``ODS=lastSync;age=seconds;fresh|stale`` item per source."""
    out = []
    for item in items:
        age = "" if item.age_seconds is None else f";age={int(item.age_seconds)}"
        out.append(
            f"{item.ods_code or item.source}={item.last_sync or 'never'}{age};{'stale' if item.stale else 'fresh'}"
        )
    return ", ".join(out)
