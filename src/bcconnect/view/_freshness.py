"""Freshness: how current each trust's data is, stated with every response that shows a person's data.

What "last successful sync" and "stale" mean is defined once, by the store that holds the fact
(:func:`bcconnect.store.source_freshness`); this module states the result on the Bundle (``meta.extension``: a
Bundle is a Resource, not a DomainResource, so its extensions live on ``meta``) and in a response header.
"""

from __future__ import annotations

from typing import Any, Final

from bcconnect.fhir.constants import BCCONNECT_BASE
from bcconnect.store import SourceFreshness

#: extension (on Bundle.meta) with one sub-extension group per source
FRESHNESS_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/source-freshness"
#: response header carrying the same facts: ``RL4=2026-11-22T10:00:00Z;age=60;fresh, RBK=…;stale`` (read from a
#: replica, each item also says ``;replica-lag=<seconds>``)
FRESHNESS_HEADER: Final = "x-bcconnect-freshness"


def freshness_extension(items: tuple[SourceFreshness, ...]) -> dict[str, Any]:
    """The Bundle.meta extension stating each source's freshness."""
    groups = []
    for item in items:
        parts: list[dict[str, Any]] = [{"url": "source", "valueString": item.source}]
        if item.ods_code:
            parts.append({"url": "ods", "valueString": item.ods_code})
        if item.last_sync:
            parts.append({"url": "lastSync", "valueInstant": item.last_sync})
        if item.replica_lag_seconds is not None:
            # read from a streaming replica: how far behind the primary it was (its data can only be older)
            parts.append({"url": "replicaLagSeconds", "valueDecimal": _seconds(item.replica_lag_seconds)})
        parts.append({"url": "stale", "valueBoolean": item.stale})
        groups.append({"url": FRESHNESS_EXTENSION, "extension": parts})
    return {"extension": groups}


def freshness_header(items: tuple[SourceFreshness, ...]) -> str:
    """The response header value: one ``ODS=lastSync;age=seconds;fresh|stale`` item per source."""
    out = []
    for item in items:
        age = "" if item.age_seconds is None else f";age={int(item.age_seconds)}"
        lag = "" if item.replica_lag_seconds is None else f";replica-lag={_seconds(item.replica_lag_seconds)}"
        out.append(
            f"{item.ods_code or item.source}={item.last_sync or 'never'}{age}{lag};"
            + ("stale" if item.stale else "fresh")
        )
    return ", ".join(out)


def _seconds(value: float) -> float:
    """Seconds to one decimal; an unknown lag (the replica never replayed a transaction) as a day's worth."""
    return round(min(value, 86_400.0), 1)
