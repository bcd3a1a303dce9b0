"""Leases: one ingest worker at a time per adapter, moving to a survivor when a worker dies.

Several ``bcconnect run`` workers may share one PostgreSQL. Before it polls an adapter, a worker takes the lease
``adapter:<name>`` for ``lease_seconds`` and renews it every third of that while it works and waits; a worker
that cannot take it (another holds a live lease) waits and tries again. A worker killed mid-sync stops renewing;
once its lease expires a survivor takes the adapter and resumes from the last committed cursor — every page is
committed with its cursor in one transaction, so nothing is lost or doubled. A worker that loses its lease
(a long pause) cancels its sync at once.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass

from bcconnect.store import Tx


def worker_identity() -> str:
    """A name for this worker process: host, pid and a random suffix (a pid may be reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def acquire_lease(tx: Tx, name: str, *, owner: str, ttl_seconds: float, now: float | None = None) -> bool:
    """Take or renew the lease ``name`` for ``owner``; False when another owner holds a live one."""
    now = time.time() if now is None else now
    tx.execute(
        "INSERT INTO ingest_leases (name, owner, expires_at, taken_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,"
        " taken_at = CASE WHEN ingest_leases.owner = excluded.owner THEN ingest_leases.taken_at"
        " ELSE excluded.taken_at END"
        " WHERE ingest_leases.owner = excluded.owner OR ingest_leases.expires_at < ?",
        (name, owner, now + ttl_seconds, now, now),
    )
    row = tx.query_one("SELECT owner FROM ingest_leases WHERE name = ?", (name,))
    return row is not None and row[0] == owner


def release_lease(tx: Tx, name: str, *, owner: str) -> None:
    """Give the lease up (a clean shutdown), so another worker need not wait for it to expire."""
    tx.execute("DELETE FROM ingest_leases WHERE name = ? AND owner = ?", (name, owner))


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a lease, since when and until when (Unix seconds)."""

    name: str
    owner: str
    expires_at: float
    taken_at: float


def list_leases(tx: Tx) -> list[Lease]:
    """Every lease, live or expired, by name."""
    rows = tx.query("SELECT name, owner, expires_at, taken_at FROM ingest_leases ORDER BY name")
    return [Lease(str(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in rows]
