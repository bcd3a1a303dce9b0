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


def audit_chain_base(tx: Tx) -> AuditEntry:
    """Where the stored chain starts: the last event pruned by retention (seq 0 and the genesis hash if none)."""
    row = tx.query_one("SELECT seq, hash FROM audit_chain_base WHERE id = 1")
    return AuditEntry(int(row[0]), str(row[1])) if row else AuditEntry(0, GENESIS_HASH)


def verify_audit_chain(tx: Tx, checkpoints: Sequence[Checkpoint] = ()) -> ChainReport:
    """Recompute every link; report the first sequence number where the chain is broken.

    ``checkpoints`` (signed, kept outside the database) catch what a self-consistent chain cannot: truncation
    (a checkpointed event is gone) and re-hashing (a checkpointed event has another hash). When retention has
    pruned the oldest events, the chain starts after its base, which a valid signed checkpoint must name
    (else events were removed by someone other than ``audit prune``); checkpoints before it name exported
    events and are checked against the export, not here.
    """
    base = audit_chain_base(tx)
    if base.seq and not any(c.valid and (c.seq, c.hash) == (base.seq, base.hash) for c in checkpoints):
        return ChainReport(
            False, 0, None, f"the trail starts after event {base.seq}, but no signed checkpoint names that event"
        )
    later = [c for c in checkpoints if not c.valid or c.seq > base.seq]
    anchored = {c.seq for c in later}
    seen_at: dict[int, str] = {}
    report = _walk_chain(tx, anchored, seen_at, base)
    problem = check_against_anchors(seen_at, base.seq + report.events, later)
    if problem is not None and (report.ok or report.first_bad_seq is None):
        return ChainReport(False, report.events, None, problem)
    return report


def _walk_chain(tx: Tx, anchored: set[int], seen_at: dict[int, str], base: AuditEntry) -> ChainReport:
    expected_seq, prev_hash, count = base.seq + 1, base.hash, 0
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
    if int(head[0]) != base.seq + count or head[1] != prev_hash:
        return ChainReport(False, count, base.seq + count + 1, "events after the last stored one are missing")
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


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One link of the chain as stored: what an export line carries."""

    seq: int
    prev_hash: str
    hash: str
    body: bytes


def last_event_before(tx: Tx, recorded_before: str) -> AuditEntry | None:
    """The newest event recorded before ``recorded_before`` (ISO instant, UTC), or None."""
    row = tx.query_one(
        "SELECT seq, hash FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events WHERE recorded < ?)",
        (recorded_before,),
    )
    return AuditEntry(int(row[0]), str(row[1])) if row else None


def stored_events(tx: Tx, *, after: int, through: int, limit: int = _VERIFY_BATCH) -> list[StoredEvent]:
    """Events ``after < seq <= through`` in chain order, at most ``limit`` (page with ``after``)."""
    rows = tx.query(
        "SELECT seq, prev_hash, hash, body, body_z FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (after, through, limit),
    )
    return [StoredEvent(int(r[0]), str(r[1]), str(r[2]), _event_bytes(r[3], r[4])) for r in rows]


def drop_audit_events_through(tx: Tx, through: AuditEntry) -> int:
    """Remove every event up to ``through`` and make it the chain's base; returns how many were removed.

    Call only after the events are exported and ``through`` is checkpointed: verification then starts here.
    """
    base = audit_chain_base(tx)
    if through.seq <= base.seq:
        return 0
    tx.execute("DELETE FROM audit_event_patients WHERE seq <= ?", (through.seq,))
    tx.execute("DELETE FROM audit_events WHERE seq <= ?", (through.seq,))
    tx.execute(
        "INSERT INTO audit_chain_base (id, seq, hash) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (through.seq, through.hash),
    )
    return through.seq - base.seq
