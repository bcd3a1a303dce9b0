"""The export jobs and their files, in the store (tables ``bulk_jobs`` and ``bulk_files``, owned here).

A job is ``queued`` until a worker claims it (a lease: ``lease_owner`` until ``lease_until``), ``running`` while
one works it, then ``completed`` or ``failed``; ``cancelled`` by ``DELETE``; ``expired`` once its files are swept.
A worker that dies leaves a ``running`` job with a lease that runs out, and any worker then resumes it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bcconnect.store import Tx


class JobState(enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


#: states whose job still has work to do
ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


@dataclass(frozen=True, slots=True)
class Job:
    """One row of ``bulk_jobs``."""

    job_id: str
    state: JobState
    level: str
    group_id: str | None
    request_url: str
    parameters: dict[str, Any]
    access: dict[str, Any]
    client_id: str | None
    user_id: str | None
    at_t: int
    transaction_time: str
    created_at: float
    finished_at: float | None
    expires_at: float | None
    progress: dict[str, Any]
    manifest: bytes | None
    error: str | None


@dataclass(frozen=True, slots=True)
class JobFile:
    """One NDJSON file a job wrote (``kind``: ``output`` or ``error``)."""

    name: str
    resource_type: str
    kind: str
    seq: int
    line_count: int
    byte_count: int


_COLUMNS = (
    "job_id, status, level, group_id, request_url, parameters, access, client_id, user_id, at_t, transaction_time,"
    " created_at, finished_at, expires_at, progress, manifest, error"
)


def _job(row: tuple[Any, ...]) -> Job:
    manifest = row[15]
    return Job(
        job_id=row[0],
        state=JobState(row[1]),
        level=row[2],
        group_id=row[3],
        request_url=row[4],
        parameters=orjson.loads(row[5]),
        access=orjson.loads(row[6]),
        client_id=row[7],
        user_id=row[8],
        at_t=int(row[9]),
        transaction_time=row[10],
        created_at=float(row[11]),
        finished_at=None if row[12] is None else float(row[12]),
        expires_at=None if row[13] is None else float(row[13]),
        progress=orjson.loads(row[14] or "{}"),
        manifest=manifest.encode() if isinstance(manifest, str) else manifest,
        error=row[16],
    )


def insert_job(tx: Tx, job: Job) -> None:
    """Record a new (queued) job."""
    tx.execute(
        f"INSERT INTO bulk_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            job.job_id,
            job.state.value,
            job.level,
            job.group_id,
            job.request_url,
            orjson.dumps(job.parameters).decode(),
            orjson.dumps(job.access).decode(),
            job.client_id,
            job.user_id,
            job.at_t,
            job.transaction_time,
            job.created_at,
            job.finished_at,
            job.expires_at,
            orjson.dumps(job.progress).decode(),
            None if job.manifest is None else job.manifest.decode(),
            job.error,
        ),
    )


def get_job(tx: Tx, job_id: str) -> Job | None:
    """One job, or None."""
    row = tx.query_one(f"SELECT {_COLUMNS} FROM bulk_jobs WHERE job_id = ?", (job_id,))  # noqa: S608
    return _job(row) if row else None


def claim_jobs(tx: Tx, owner: str, *, now: float, lease_seconds: float, limit: int) -> list[Job]:
    """Up to ``limit`` jobs with work left and no live lease, now leased to ``owner`` (oldest first)."""
    if limit <= 0:
        return []
    rows = tx.query(
        "SELECT job_id FROM bulk_jobs WHERE status IN (?, ?) AND (lease_until IS NULL OR lease_until < ?)"
        " ORDER BY created_at LIMIT ?",
        (*ACTIVE, now, limit),
    )
    claimed: list[Job] = []
    for (job_id,) in rows:
        tx.execute(
            "UPDATE bulk_jobs SET status = ?, lease_owner = ?, lease_until = ?"
            " WHERE job_id = ? AND status IN (?, ?) AND (lease_until IS NULL OR lease_until < ?)",
            (JobState.RUNNING.value, owner, now + lease_seconds, job_id, *ACTIVE, now),
        )
        job = get_job(tx, job_id)
        if job is not None and job.state is JobState.RUNNING:
            claimed.append(job)
    return claimed


def renew(tx: Tx, job_id: str, owner: str, *, until: float, progress: Mapping[str, Any]) -> JobState | None:
    """Extend ``owner``'s lease and save progress; the job's state now (None: gone, or no longer ours)."""
    tx.execute(
        "UPDATE bulk_jobs SET lease_until = ?, progress = ? WHERE job_id = ? AND lease_owner = ? AND status = ?",
        (until, orjson.dumps(dict(progress)).decode(), job_id, owner, JobState.RUNNING.value),
    )
    row = tx.query_one("SELECT status, lease_owner FROM bulk_jobs WHERE job_id = ?", (job_id,))
    if row is None or row[1] != owner:
        return None
    return JobState(row[0])


def finish(
    tx: Tx,
    job_id: str,
    owner: str,
    *,
    state: JobState,
    now: float,
    expires_at: float,
    manifest: bytes | None = None,
    error: str | None = None,
) -> bool:
    """Mark ``owner``'s running job completed or failed; False when it was cancelled (or taken) meanwhile."""
    tx.execute(
        "UPDATE bulk_jobs SET status = ?, finished_at = ?, expires_at = ?, manifest = ?, error = ?,"
        " lease_owner = NULL, lease_until = NULL WHERE job_id = ? AND lease_owner = ? AND status = ?",
        (
            state.value,
            now,
            expires_at,
            None if manifest is None else manifest.decode(),
            error,
            job_id,
            owner,
            JobState.RUNNING.value,
        ),
    )
    row = tx.query_one("SELECT status FROM bulk_jobs WHERE job_id = ?", (job_id,))
    return row is not None and row[0] == state.value


def set_state(tx: Tx, job_id: str, state: JobState, *, now: float) -> None:
    """Cancel or expire a job (its files are the caller's to remove); the row stays to answer 404 with why."""
    tx.execute(
        "UPDATE bulk_jobs SET status = ?, finished_at = COALESCE(finished_at, ?), lease_owner = NULL,"
        " lease_until = NULL, manifest = NULL WHERE job_id = ?",
        (state.value, now, job_id),
    )
    tx.execute("DELETE FROM bulk_files WHERE job_id = ?", (job_id,))


def expired_jobs(tx: Tx, *, now: float) -> list[str]:
    """Finished jobs past their expiry (their files are due for removal)."""
    rows = tx.query(
        "SELECT job_id FROM bulk_jobs WHERE status IN (?, ?) AND expires_at IS NOT NULL AND expires_at < ?",
        (JobState.COMPLETED.value, JobState.FAILED.value, now),
    )
    return [str(r[0]) for r in rows]


def add_file(tx: Tx, job_id: str, file: JobFile) -> None:
    """Record a file once it is complete on disk."""
    tx.execute(
        "INSERT INTO bulk_files (job_id, name, resource_type, kind, seq, line_count, byte_count)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (job_id, file.name, file.resource_type, file.kind, file.seq, file.line_count, file.byte_count),
    )


def job_files(tx: Tx, job_id: str) -> list[JobFile]:
    """A job's files, in the order written."""
    rows = tx.query(
        "SELECT name, resource_type, kind, seq, line_count, byte_count FROM bulk_files WHERE job_id = ?"
        " ORDER BY kind DESC, resource_type, seq",
        (job_id,),
    )
    return [JobFile(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5])) for r in rows]


def _owner_type(file: JobFile) -> str:
    """The type whose writing made the file: its own, or for ``Provenance-<type>-<n>.ndjson`` the type described."""
    parts = file.name.split("-")
    return parts[1] if file.resource_type == "Provenance" and len(parts) == 3 else file.resource_type


def drop_files_of_types(tx: Tx, job_id: str, keep_types: frozenset[str]) -> list[str]:
    """Forget the files of every type not in ``keep_types`` (a resumed job rewrites them); their names."""
    names = [f.name for f in job_files(tx, job_id) if _owner_type(f) not in keep_types or f.kind != "output"]
    for name in names:
        tx.execute("DELETE FROM bulk_files WHERE job_id = ? AND name = ?", (job_id, name))
    return names
