"""The record of every sync run, and the per-adapter status derived from it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from bcconnect.ingest._report import SyncReport
from bcconnect.store import Tx

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
        " unchanged = ?, quarantined = ?, deleted = ?, error = ? WHERE run_id = ?",
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
            run_id,
        ),
    )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the run history says about one adapter."""

    adapter: str
    last_success: str | None
    last_run: str | None
    last_error: str | None
    runs: int
    failed_runs: int

    @property
    def error_rate(self) -> float:
        """Failed share of the recent runs (0 when there were none)."""
        return self.failed_runs / self.runs if self.runs else 0.0


def summarise(tx: Tx, adapter: str) -> RunSummary:
    """Last success, last run and the error rate over the recent runs of ``adapter``."""
    last_success = tx.query_one("SELECT MAX(finished_at) FROM ingest_runs WHERE adapter = ? AND ok = 1", (adapter,))
    recent = tx.query(
        "SELECT finished_at, ok, error FROM ingest_runs WHERE adapter = ? AND finished_at IS NOT NULL"
        " ORDER BY started_at DESC LIMIT ?",
        (adapter, ERROR_RATE_WINDOW),
    )
    failed = [row for row in recent if not row[1]]
    return RunSummary(
        adapter=adapter,
        last_success=last_success[0] if last_success else None,
        last_run=recent[0][0] if recent else None,
        last_error=failed[0][2] if failed and recent and not recent[0][1] else None,
        runs=len(recent),
        failed_runs=len(failed),
    )
