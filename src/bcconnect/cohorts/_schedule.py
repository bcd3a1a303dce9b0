"""Recomputing cohorts on a schedule (``[cohorts] recompute_minutes`` in ``bcconnect run``).

Several ``bcconnect run`` workers may share one store: each looks at when the cohorts were last computed and
computes only when the newest computation is older than the interval, so the work is not repeated per worker
(two workers waking at the same moment may both compute; the result is the same).
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

from bcconnect.cohorts._compute import Cohorts, parse_instant
from bcconnect.cohorts._group import cohort_runs
from bcconnect.logging import get_logger

log = get_logger(__name__)


async def due_in_seconds(cohorts: Cohorts, minutes: int, *, now: datetime | None = None) -> float:
    """Seconds until the next computation is due (0: now), from the oldest of the defined cohorts' runs."""
    runs = {r.group_id: r for r in await cohort_runs(cohorts.view)}
    times = [parse_instant(runs[c.id].computed_at) if c.id in runs else None for c in cohorts.definitions.cohorts]
    if not times or any(t is None for t in times):
        return 0.0
    oldest = min(t for t in times if t is not None)
    elapsed = ((now or datetime.now(UTC)) - oldest).total_seconds()
    return max(0.0, minutes * 60 - elapsed)


async def run_schedule(cohorts: Cohorts, minutes: int) -> None:
    """Compute every cohort whenever due, forever (until cancelled); a failure is logged and retried later."""
    if minutes <= 0:
        return
    while True:
        wait = await due_in_seconds(cohorts, minutes)
        if wait > 0:
            await anyio.sleep(min(wait, minutes * 60))
            continue
        try:
            runs = await cohorts.compute()
            log.info("cohorts_computed", **{r.group_id: r.member_count for r in runs})
        except Exception as exc:  # noqa: BLE001 - a failed computation must not stop the daemon's other work
            log.error("cohorts_compute_failed", error=f"{type(exc).__name__}: {exc}")
            await anyio.sleep(min(300, minutes * 60))
