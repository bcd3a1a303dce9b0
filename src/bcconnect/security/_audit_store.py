"""The audit trail on the store: append (hash-chained, linear under concurrency), verify, and search.

Each event's hash covers its sequence number, the previous event's hash and its exact JSON body, so changing,
removing or reordering any stored event breaks the chain from that point; the head row also guards the tail.
Appends serialise on the head row inside the caller's write transaction, so the event is durable when the
transaction commits, which the API awaits before it sends the response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bcconnect.errors import StoreError
from bcconnect.security._anchor import Checkpoint, check_against_anchors
from bcconnect.security._audit_codec import pack, unpack

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
    return append_audit_events(tx, [(event, patients)])[0]


def append_audit_events(tx: Tx, events: Sequence[tuple[dict[str, Any], Iterable[str]]]) -> list[AuditEntry]:
    """Append several AuditEvents, in order, to the chain in this write transaction (one place per event).

    The head row is taken once for the lot: a statement per table per batch, not per event (group commit).
    """
    if not events:
        return []
    # the UPDATE comes first: it takes the lock that makes concurrent appends wait their turn
    row = tx.query_one("UPDATE audit_chain_head SET seq = seq + ? WHERE id = 1 RETURNING seq, hash", (len(events),))
    if row is None:
        raise StoreError("the audit chain head row is missing (migration 0200 not applied)")
    seq, prev_hash = int(row[0]) - len(events), str(row[1])
    entries: list[AuditEntry] = []
    event_rows: list[tuple[object, ...]] = []
    patient_rows: list[tuple[int, str]] = []
    for event, patients in events:
        seq += 1
        body = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
        digest = chain_hash(seq, prev_hash, body)
        # stored deflated (body_z); body stays empty: the hash covers the JSON, which unpacks exactly
        event_rows.append((seq, str(event["id"]), str(event.get("recorded", "")), prev_hash, digest, "", pack(body)))
        patient_rows += [(seq, k) for k in sorted({patient_key(p) for p in patients})]
        entries.append(AuditEntry(seq=seq, hash=digest))
        prev_hash = digest
    tx.executemany(
        "INSERT INTO audit_events (seq, event_id, recorded, prev_hash, hash, body, body_z)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        event_rows,
    )
    if patient_rows:
        tx.executemany("INSERT INTO audit_event_patients (seq, patient) VALUES (?, ?)", patient_rows)
    tx.execute("UPDATE audit_chain_head SET hash = ? WHERE id = 1", (prev_hash,))
    return entries


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the whole chain: ``ok``, how many events, and the first broken link."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_audit_chain(tx: Tx, checkpoints: Sequence[Checkpoint] = ()) -> ChainReport:
    """Recompute every link; report the first sequence number where the chain is broken.

    ``checkpoints`` (signed, kept outside the database) catch what a self-consistent chain cannot: truncation
    (a checkpointed event is gone) and re-hashing (a checkpointed event has another hash).
    """
    anchored = {c.seq for c in checkpoints}
    seen_at: dict[int, str] = {}
    report = _walk_chain(tx, anchored, seen_at)
    problem = check_against_anchors(seen_at, report.events, checkpoints)
    if problem is not None and (report.ok or report.first_bad_seq is None):
        return ChainReport(False, report.events, None, problem)
    return report


def _walk_chain(tx: Tx, anchored: set[int], seen_at: dict[int, str]) -> ChainReport:
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    while True:
        rows = tx.query(
            "SELECT seq, prev_hash, hash, body, body_z FROM audit_events WHERE seq >= ? ORDER BY seq LIMIT ?",
            (expected_seq, _VERIFY_BATCH),
        )
        for seq, stored_prev, stored_hash, body, body_z in rows:
            seq = int(seq)
            if seq != expected_seq:
                return ChainReport(False, count, expected_seq, f"event {expected_seq} is missing")
            if stored_prev != prev_hash:
                return ChainReport(False, count, seq, "the link to the previous event does not match")
            try:
                content = _event_bytes(body, body_z)
            except ValueError:
                return ChainReport(False, count, seq, "the event's stored form is damaged")
            if chain_hash(seq, prev_hash, content) != stored_hash:
                return ChainReport(False, count, seq, "the event's content does not match its hash")
            if seq in anchored:
                seen_at[seq] = stored_hash
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


def search_audit_events(tx: Tx, *, patient: str | Iterable[str], count: int = 50, offset: int = 0) -> list[bytes]:
    """AuditEvents about one patient (or any of several ids of one person), newest first, as stored JSON."""
    keys = sorted({patient_key(p) for p in ([patient] if isinstance(patient, str) else patient)})
    if not keys:
        return []
    rows = tx.query(
        "SELECT e.body, e.body_z FROM audit_events e WHERE e.seq IN (SELECT p.seq FROM audit_event_patients p"  # noqa: S608 - only '?' marks
        f" WHERE p.patient IN ({','.join('?' * len(keys))})) ORDER BY e.seq DESC LIMIT ? OFFSET ?",
        (*keys, max(0, count), max(0, offset)),
    )
    return [_event_bytes(r[0], r[1]) for r in rows]


def _event_bytes(body: object, body_z: object) -> bytes:
    """An event's JSON bytes from its stored columns: the deflated form when present, else the text."""
    if body_z is not None:
        return unpack(bytes(body_z))  # type: ignore[call-overload]  # bytes or memoryview from the driver
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)  # type: ignore[call-overload]


def audit_chain_head(tx: Tx) -> AuditEntry:
    """The newest event's sequence number and hash, as the head row holds them."""
    row = tx.query_one("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
    if row is None:
        raise StoreError("the audit chain head row is missing (migration 0200 not applied)")
    return AuditEntry(int(row[0]), str(row[1]))


def count_audit_events(tx: Tx) -> int:
    """How many events the trail holds."""
    row = tx.query_one("SELECT COUNT(*) FROM audit_events")
    return int(row[0]) if row else 0
