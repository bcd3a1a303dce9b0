"""The record of every sync run, and the per-adapter status derived from it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from bcconnect.ingest._held import count_held
from bcconnect.ingest._report import SyncReport
from bcconnect.store import Tx, count_open_quarantine, cursor_updated_at, get_cursor, mark_synced

#: how many recent runs the error rate is computed over
ERROR_RATE_WINDOW = 20


def utc_now() -> str:
    """Now, as an ISO 8601 UTC instant with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def start_run(tx: Tx, adapter: str) -> str:
    """Record that a sync of ``adapter`` started; returns the run id."""
    run_id = str(uuid.uuid4())
    tx.execute("INSERT INTO ingest_runs (run_id, adapter, started_at) VALUES (?, ?, ?)", (run_id, adapter, utc_now()))
    return run_id


def finish_run(tx: Tx, run_id: str, report: SyncReport) -> None:
    """Record how a run ended, with its reconciliation counts."""
    tx.execute(
        "UPDATE ingest_runs SET finished_at = ?, ok = ?, fetched = ?, new_records = ?, changed = ?,"
        " unchanged = ?, quarantined = ?, deleted = ?, error = ?, status = ?, detail = ?, held = ? WHERE run_id = ?",
        (
            utc_now(),
            1 if report.ok else 0,
            report.fetched,
            report.new,
            report.changed,
            report.unchanged,
            report.quarantined,
            report.deleted,
            report.error,
            report.status,
            report.degraded,
            report.held,
            run_id,
        ),
    )
    if report.ok:  # the one definition of a source's last successful sync (bcconnect.store.source_freshness)
        mark_synced(tx, report.adapter)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the run history says about one adapter."""

    adapter: str
    last_success: str | None
    last_run: str | None
    last_error: str | None
    runs: int
    failed_runs: int
    quarantine_depth: int = 0
    cursor: str | None = None
    cursor_updated_at: str | None = None
    #: how the last finished run ended (OK, DEGRADED, FAILED) and why, when not OK
    last_status: str | None = None
    last_detail: str | None = None
    held: int = 0

    @property
    def error_rate(self) -> float:
        """Failed share of the recent runs (0 when there were none)."""
        return self.failed_runs / self.runs if self.runs else 0.0


def summarise(tx: Tx, adapter: str) -> RunSummary:
    """Last success, last run and the error rate over the recent runs of ``adapter``."""
    last_success = tx.query_one("SELECT MAX(finished_at) FROM ingest_runs WHERE adapter = ? AND ok = 1", (adapter,))
    recent = tx.query(
        "SELECT finished_at, ok, error, status, detail FROM ingest_runs WHERE adapter = ? AND finished_at IS NOT NULL"
        " ORDER BY started_at DESC LIMIT ?",
        (adapter, ERROR_RATE_WINDOW),
    )
    failed = [row for row in recent if not row[1]]
    depth = count_open_quarantine(tx, adapter)
    cursor = get_cursor(tx, adapter)
    last_status = (recent[0][3] or ("OK" if recent[0][1] else "FAILED")) if recent else None
    last_detail = (recent[0][4] or recent[0][2]) if recent else None
    return RunSummary(
        adapter=adapter,
        last_success=last_success[0] if last_success else None,
        last_run=recent[0][0] if recent else None,
        last_error=failed[0][2] if failed and recent and not recent[0][1] else None,
        runs=len(recent),
        failed_runs=len(failed),
        quarantine_depth=depth,
        cursor=cursor,
        cursor_updated_at=cursor_updated_at(tx, adapter),
        last_status=last_status,
        last_detail=last_detail,
        held=count_held(tx, adapter),
    )


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Everything the finished runs of one adapter did, summed (the store-wide counters of /metrics)."""

    adapter: str
    runs_ok: int
    runs_failed: int
    fetched: int
    new: int
    changed: int
    unchanged: int
    quarantined: int
    deleted: int


def run_totals(tx: Tx) -> list[RunTotals]:
    """Per adapter, the sums over every finished run, whichever process ran it."""
    rows = tx.query(
        "SELECT adapter, SUM(CASE WHEN ok = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN ok = 1 THEN 0 ELSE 1 END),"
        " SUM(fetched), SUM(new_records), SUM(changed), SUM(unchanged), SUM(quarantined), SUM(deleted)"
        " FROM ingest_runs WHERE finished_at IS NOT NULL GROUP BY adapter ORDER BY adapter"
    )
    return [RunTotals(str(r[0]), *(int(v or 0) for v in r[1:])) for r in rows]


@dataclass(frozen=True, slots=True)
class FailedRun:
    """A sync run that did not end OK: when, how far it got, and why."""

    run_id: str
    adapter: str
    started_at: str
    finished_at: str | None
    status: str
    fetched: int
    error: str | None


def recent_failed_runs(tx: Tx, *, limit: int = 20) -> list[FailedRun]:
    """The latest finished runs that failed or were DEGRADED, newest first."""
    rows = tx.query(
        "SELECT run_id, adapter, started_at, finished_at, status, fetched, COALESCE(error, detail) FROM ingest_runs"
        " WHERE finished_at IS NOT NULL AND (ok = 0 OR status <> 'OK') ORDER BY started_at DESC LIMIT ?",
        (limit,),
    )
    return [FailedRun(str(r[0]), str(r[1]), str(r[2]), r[3], str(r[4] or "FAILED"), int(r[5] or 0), r[6]) for r in rows]


def watermark_of(cursor: str | None) -> str | None:
    """The newest source timestamp a cursor records (JSON cursors of the FHIR kind), else the cursor itself.

    >>> watermark_of('{"Patient": {"w": "2026-11-01T10:00:00Z"}, "Encounter": {"w": "2026-11-02T09:00:00Z"}}')
    '2026-11-02T09:00:00Z'
    >>> watermark_of("feed-42")
    'feed-42'
    """
    if cursor is None:
        return None
    try:
        data = orjson.loads(cursor)
    except orjson.JSONDecodeError:
        return cursor
    instants = [v for v in _strings(data) if len(v) >= 20 and v[4:5] == "-" and "T" in v]
    return max(instants) if instants else cursor[:60]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
