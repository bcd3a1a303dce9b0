"""The audit trail on the store: append (hash-chained, linear under concurrency), verify, and search.

Each event's hash covers its sequence number, the previous event's hash and its exact JSON body, so changing,
removing or reordering any stored event breaks the chain from that point; the head row also guards the tail.
Appends serialise on the head row inside the caller's write transaction, so the event is durable when the
transaction commits, which the API awaits before it sends the response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bcconnect.errors import StoreError

if TYPE_CHECKING:
    from bcconnect.store import Tx

GENESIS_HASH = "0" * 64
_VERIFY_BATCH = 500


def chain_hash(seq: int, prev_hash: str, body: bytes) -> str:
    """The hash of one chain link.

    >>> chain_hash(1, "0" * 64, b"{}")[:12]
    'f9c58de239d5'
    """
    return hashlib.sha256(f"{seq}|{prev_hash}|".encode("ascii") + body).hexdigest()


def patient_key(reference: str) -> str:
    """Normalise a patient reference for the audit index: ``Patient/<id>`` (a bare id gains the prefix).

    >>> patient_key("abc"), patient_key("Patient/abc"), patient_key("https://x.example/fhir/Patient/abc")
    ('Patient/abc', 'Patient/abc', 'Patient/abc')
    """
    tail = reference.strip().rstrip("/")
    if "/Patient/" in tail:
        tail = tail.rsplit("/Patient/", 1)[1]
    tail = tail.removeprefix("Patient/")
    return f"Patient/{tail}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Where an appended event sits in the chain."""

    seq: int
    hash: str


def append_audit_event(tx: Tx, event: dict[str, Any], *, patients: Iterable[str] = ()) -> AuditEntry:
    """Append one AuditEvent to the chain in this write transaction."""
    # the UPDATE comes first: it takes the lock that makes concurrent appends wait their turn
    tx.execute("UPDATE audit_chain_head SET seq = seq + 1 WHERE id = 1")
    row = tx.query_one("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
    if row is None:
        raise StoreError("the audit chain head row is missing (migration 0200 not applied)")
    seq, prev_hash = int(row[0]), str(row[1])
    body = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    digest = chain_hash(seq, prev_hash, body)
    tx.execute(
        "INSERT INTO audit_events (seq, event_id, recorded, prev_hash, hash, body) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, str(event["id"]), str(event.get("recorded", "")), prev_hash, digest, body.decode("utf-8")),
    )
    keys = sorted({patient_key(p) for p in patients})
    if keys:
        tx.executemany("INSERT INTO audit_event_patients (seq, patient) VALUES (?, ?)", [(seq, k) for k in keys])
    tx.execute("UPDATE audit_chain_head SET hash = ? WHERE id = 1", (digest,))
    return AuditEntry(seq=seq, hash=digest)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the whole chain: ``ok``, how many events, and the first broken link."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_audit_chain(tx: Tx) -> ChainReport:
    """Recompute every link; report the first sequence number where the chain is broken."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    while True:
        rows = tx.query(
            "SELECT seq, prev_hash, hash, body FROM audit_events WHERE seq >= ? ORDER BY seq LIMIT ?",
            (expected_seq, _VERIFY_BATCH),
        )
        for seq, stored_prev, stored_hash, body in rows:
            seq = int(seq)
            if seq != expected_seq:
                return ChainReport(False, count, expected_seq, f"event {expected_seq} is missing")
            if stored_prev != prev_hash:
                return ChainReport(False, count, seq, "the link to the previous event does not match")
            text = body if isinstance(body, str) else bytes(body).decode("utf-8")
            if chain_hash(seq, prev_hash, text.encode("utf-8")) != stored_hash:
                return ChainReport(False, count, seq, "the event's content does not match its hash")
            prev_hash, expected_seq, count = stored_hash, seq + 1, count + 1
        if len(rows) < _VERIFY_BATCH:
            break
    head = tx.query_one("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
    if head is None:
        return ChainReport(False, count, None, "the chain head is missing")
    if int(head[0]) != count or head[1] != prev_hash:
        return ChainReport(False, count, count + 1, "events after the last stored one are missing")
    # an event stored beyond a gap would not be reached above; a stray row is tampering too
    stray = tx.query_one("SELECT COUNT(*) FROM audit_events")
    if stray is not None and int(stray[0]) != count:
        return ChainReport(False, count, None, "the trail holds events outside the chain")
    return ChainReport(True, count)


def search_audit_events(tx: Tx, *, patient: str, count: int = 50, offset: int = 0) -> list[bytes]:
    """AuditEvents about one patient, newest first, as stored JSON bytes."""
    rows = tx.query(
        "SELECT e.body FROM audit_event_patients p JOIN audit_events e ON e.seq = p.seq"
        " WHERE p.patient = ? ORDER BY e.seq DESC LIMIT ? OFFSET ?",
        (patient_key(patient), max(0, count), max(0, offset)),
    )
    return [(r[0] if isinstance(r[0], str) else bytes(r[0]).decode("utf-8")).encode("utf-8") for r in rows]


def audit_chain_head(tx: Tx) -> tuple[int, str]:
    """The sequence number and hash of the newest link of the chain (0 and the genesis hash when empty)."""
    row = tx.query_one("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def count_audit_events(tx: Tx) -> int:
    """How many events the trail holds."""
    row = tx.query_one("SELECT COUNT(*) FROM audit_events")
    return int(row[0]) if row else 0
