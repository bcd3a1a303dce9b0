"""The audit trail on the store: append (hash-chained, one chain per writer), verify, and search.

Each event's hash covers its place in its chain, the previous event's hash and its exact JSON body, so changing,
removing or reordering any stored event breaks its chain from that point; each chain's row also guards the tail.
A chain is one writer's segment: an API process appends to its own chain (``audit_chains`` row), so appends from
two processes never wait on one row; the shared chain ``main`` holds the trail written before chains per writer
and the rare appends that have no writer of their own (operator actions). The first link of a chain links to a
genesis hash that names the chain, so an event moved between chains no longer verifies. Appends lock their
chain's row inside the caller's write transaction, so an event is durable when the transaction commits, which
the API awaits before it sends the response. ``seq`` numbers every event of the trail (a PostgreSQL sequence;
on SQLite the one writer's next number) for ordering "newest first"; verification checks it follows each
chain's own order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from bcconnect.errors import StoreError
from bcconnect.security._anchor import SHARED_CHAIN, Checkpoint, check_against_anchors
from bcconnect.security._audit_codec import pack, unpack

if TYPE_CHECKING:
    from bcconnect.store import Tx

GENESIS_HASH = "0" * 64
_VERIFY_BATCH = 500


def chain_hash(seq: int, prev_hash: str, body: bytes) -> str:
    """The hash of one chain link (``seq``: the link's place in its chain).

    >>> chain_hash(1, "0" * 64, b"{}")[:12]
    'f9c58de239d5'
    """
    return hashlib.sha256(f"{seq}|{prev_hash}|".encode("ascii") + body).hexdigest()


def chain_genesis(chain: str) -> str:
    """The "previous hash" of a chain's first link. It names the chain, so an event moved into another chain
    (or a chain renamed) no longer verifies; the shared chain keeps the all-zero genesis it always had.

    >>> chain_genesis(SHARED_CHAIN) == GENESIS_HASH, chain_genesis("w1") == chain_genesis("w2")
    (True, False)
    """
    if chain == SHARED_CHAIN:
        return GENESIS_HASH
    return hashlib.sha256(f"bcconnect-audit-chain|{chain}".encode()).hexdigest()


def month_of(instant: str) -> int:
    """The month (yyyymm) of an ISO instant; 0 when it has none.

    >>> month_of("2026-11-30T23:59:59.999Z"), month_of("")
    (202611, 0)
    """
    if len(instant) >= 7 and instant[:4].isdigit() and instant[4] == "-" and instant[5:7].isdigit():
        return int(instant[:4]) * 100 + int(instant[5:7])
    return 0


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
    """Where an appended event sits: ``seq`` orders every event of the trail; ``link`` is its place in ``chain``."""

    seq: int
    hash: str
    chain: str = SHARED_CHAIN
    link: int = 0


@dataclass(frozen=True, slots=True)
class ChainState:
    """One chain (segment) as the store holds it."""

    chain: str
    writer: str
    link: int
    hash: str
    base_link: int
    base_hash: str
    month: int
    opened_at: str
    written_at: str
    closed_at: str | None

    @property
    def closed(self) -> bool:
        """Its writer closed it: nothing is appended to it any more."""
        return self.closed_at is not None


_CHAIN_COLUMNS = "chain, writer, link, hash, base_link, base_hash, month, opened_at, written_at, closed_at"


def _chain_state(row: Sequence[Any]) -> ChainState:
    return ChainState(
        str(row[0]), str(row[1]), int(row[2]), str(row[3]), int(row[4]), str(row[5]),
        int(row[6]), str(row[7]), str(row[8]), None if row[9] is None else str(row[9]),
    )  # fmt: skip


def audit_chains(tx: Tx) -> list[ChainState]:
    """Every chain the store knows, open and closed, oldest first."""
    rows = tx.query(f"SELECT {_CHAIN_COLUMNS} FROM audit_chains ORDER BY opened_at, chain")  # noqa: S608 - constant
    return [_chain_state(r) for r in rows]


def audit_chain(tx: Tx, chain: str) -> ChainState | None:
    """One chain, or None."""
    row = tx.query_one(f"SELECT {_CHAIN_COLUMNS} FROM audit_chains WHERE chain = ?", (chain,))  # noqa: S608
    return _chain_state(row) if row else None


def open_audit_chain(tx: Tx, *, chain: str, writer: str, now: datetime | None = None) -> ChainState:
    """Start a new chain (a writer's segment) at link 0 with its genesis hash."""
    moment = _instant(now)
    # the partitions this segment will write to exist before it writes (PostgreSQL: this month and the next)
    ensure_audit_months(tx, [month_of(moment), next_month(month_of(moment))])
    tx.execute(
        "INSERT INTO audit_chains (chain, writer, link, hash, base_link, base_hash, month, opened_at, written_at)"
        " VALUES (?, ?, 0, ?, 0, ?, ?, ?, ?)",
        (chain, writer, chain_genesis(chain), chain_genesis(chain), month_of(moment), moment, moment),
    )
    state = audit_chain(tx, chain)
    assert state is not None
    return state


def close_audit_chain(tx: Tx, chain: str, *, now: datetime | None = None) -> ChainState | None:
    """Mark a chain closed (no event is appended to it after this); returns it, or None if it was not open."""
    rows = tx.query(
        "UPDATE audit_chains SET closed_at = ? WHERE chain = ? AND closed_at IS NULL RETURNING chain",
        (_instant(now), chain),
    )
    return audit_chain(tx, chain) if rows else None


def _instant(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append_audit_event(tx: Tx, event: dict[str, Any], *, patients: Iterable[str] = ()) -> AuditEntry:
    """Append one AuditEvent to the shared chain in this write transaction."""
    return append_audit_events(tx, [(event, patients)])[0]


#: takes the chain's row (the lock that makes appends to one chain wait their turn) and, in the same statement,
#: the trail-wide numbers of the new events: from a sequence on PostgreSQL (writers in different processes never
#: wait on each other for a number), after the highest stored on SQLite (one writer at a time)
_TAKE_CHAIN = {
    "postgresql": "UPDATE audit_chains SET link = link + ? WHERE chain = ? AND closed_at IS NULL"
    " RETURNING link, hash, month, (SELECT array_agg(nextval('audit_event_seq')) FROM generate_series(1, ?))",
    "sqlite": "UPDATE audit_chains SET link = link + ? WHERE chain = ? AND closed_at IS NULL"
    " RETURNING link, hash, month, (SELECT COALESCE(MAX(seq), 0) FROM audit_events) + 0 * ?",
}


def _seqs(dialect: str, taken: Any, count: int) -> list[int]:
    if dialect == "postgresql":
        return sorted(int(n) for n in taken)
    return list(range(int(taken) + 1, int(taken) + 1 + count))


def append_audit_events(
    tx: Tx, events: Sequence[tuple[dict[str, Any], Iterable[str]]], *, chain: str = SHARED_CHAIN
) -> list[AuditEntry]:
    """Append several AuditEvents, in order, to ``chain`` in this write transaction (one place per event).

    The chain's row is taken once for the lot: a statement per table per batch, not per event (group commit).
    A writer appends to its own chain, so writers in different processes never take the same row; the shared
    chain serialises the few writers without one (operator actions).
    """
    if not events:
        return []
    # the UPDATE comes first: it takes the lock that makes concurrent appends to one chain wait their turn
    row = tx.query_one(_TAKE_CHAIN[tx.dialect], (len(events), chain, len(events)))
    if row is None:
        raise StoreError(f"audit chain {chain!r} is not open (closed, or migration 0280 not applied)")
    link, prev_hash, month = int(row[0]) - len(events), str(row[1]), int(row[2])
    months_before, months_written = month, set[int]()
    entries: list[AuditEntry] = []
    event_rows: list[tuple[object, ...]] = []
    patient_rows: list[tuple[int, str, int]] = []
    for seq, (event, patients) in zip(_seqs(tx.dialect, row[3], len(events)), events, strict=True):
        link += 1
        body = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
        digest = chain_hash(link, prev_hash, body)
        recorded = str(event.get("recorded", ""))
        # a chain never goes back a month: an event recorded just before midnight but appended after a later
        # one stays in the later month, so dropping whole months always takes a prefix of every chain
        month = max(month, month_of(recorded))
        months_written.add(month)
        # stored deflated (body_z); body stays empty: the hash covers the JSON, which unpacks exactly
        event_rows.append((seq, chain, link, month, str(event["id"]), recorded, prev_hash, digest, "", pack(body)))
        patient_rows += [(seq, k, month) for k in sorted({patient_key(p) for p in patients})]
        entries.append(AuditEntry(seq=seq, hash=digest, chain=chain, link=link))
        prev_hash = digest
    if month != months_before:
        # the chain moves into a new month: its partition exists before the rows arrive (never the default)
        ensure_audit_months(tx, months_written)
    tx.executemany(
        "INSERT INTO audit_events (seq, chain, link, month, event_id, recorded, prev_hash, hash, body, body_z)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        event_rows,
    )
    if patient_rows:
        tx.executemany("INSERT INTO audit_event_patients (seq, patient, month) VALUES (?, ?, ?)", patient_rows)
    tx.execute(
        "UPDATE audit_chains SET hash = ?, month = ?, written_at = ? WHERE chain = ?",
        (prev_hash, month, _instant(None), chain),
    )
    return entries


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the trail: ``ok``, how many events, and the first broken link (in ``chain``)."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None
    chain: str | None = None
    chains: int = 0


def verify_audit_chain(tx: Tx, checkpoints: Sequence[Checkpoint] = ()) -> ChainReport:
    """Recompute every link of every chain; report the first place where one is broken.

    ``checkpoints`` (signed, kept outside the database) catch what self-consistent chains cannot: truncation
    (a checkpointed event is gone), re-hashing (a checkpointed event has another hash), a whole segment removed
    (its opening was signed, but the store has no such chain) and events added to a closed segment (its final
    checkpoint names an earlier end). When retention has dropped a chain's oldest events, the chain starts after
    its base, which a valid signed checkpoint must name (else events were removed by someone other than
    ``audit prune``); checkpoints at or before the base name exported events and are checked against the export.
    ``first_bad_seq`` is the link (place in its chain) where ``chain`` first breaks.
    """
    if any(not c.valid for c in checkpoints):
        return ChainReport(False, 0, None, "a checkpoint's signature does not verify (the anchor file was altered)")
    chains = audit_chains(tx)
    known = {c.chain for c in chains}
    for point in checkpoints:
        if point.chain not in known:
            problem = f"segment {point.chain} was opened (a signed checkpoint) but the store has no such chain"
            return ChainReport(False, 0, None, problem, chain=point.chain)
    total = 0
    for state in chains:
        report = _verify_one_chain(tx, state, [c for c in checkpoints if c.chain == state.chain])
        total += report.events
        if not report.ok:
            return ChainReport(False, total, report.first_bad_seq, report.problem, state.chain, len(chains))
    # an event stored outside every chain's walk (beyond a gap, or in no known chain) is tampering too
    stored = tx.query_one("SELECT COUNT(*) FROM audit_events")
    if stored is not None and int(stored[0]) != total:
        return ChainReport(False, total, None, "the trail holds events outside the chains", None, len(chains))
    return ChainReport(True, total, chains=len(chains))


def _verify_one_chain(tx: Tx, state: ChainState, checkpoints: Sequence[Checkpoint]) -> ChainReport:
    name = "the shared chain" if state.chain == SHARED_CHAIN else f"segment {state.chain}"
    if state.base_link and not any((c.seq, c.hash) == (state.base_link, state.base_hash) for c in checkpoints):
        return ChainReport(
            False, 0, None,
            f"{name} starts after event {state.base_link}, but no signed checkpoint names that event",
        )  # fmt: skip
    base = AuditEntry(
        0, state.base_hash if state.base_link else chain_genesis(state.chain), state.chain, state.base_link
    )
    later = [c for c in checkpoints if c.seq > state.base_link]
    seen_at: dict[int, str] = {0: chain_genesis(state.chain)}
    report, last_hash = _walk_chain(tx, {c.seq for c in later}, seen_at, base)
    if report.ok and (state.link != state.base_link + report.events or state.hash != last_hash):
        report = ChainReport(
            False, report.events, state.base_link + report.events + 1, "events after the last stored one are missing"
        )
    problem = check_against_anchors(seen_at, state.base_link + report.events, later)
    if problem is None and report.ok:
        final = [c for c in checkpoints if c.final]
        if final and (state.link, state.hash) != (final[-1].seq, final[-1].hash):
            problem = f"{name} was closed at event {final[-1].seq} but holds event {state.link}"
    if problem is not None and (report.ok or report.first_bad_seq is None):
        return ChainReport(False, report.events, None, f"{name}: {problem}")
    if not report.ok:
        return ChainReport(False, report.events, report.first_bad_seq, f"{name}: {report.problem}")
    return report


def _walk_chain(tx: Tx, anchored: set[int], seen_at: dict[int, str], base: AuditEntry) -> tuple[ChainReport, str]:
    """Walk one chain from its base: the report, and the hash of the last good link."""
    expected, prev_hash, count, last_seq = base.link + 1, base.hash, 0, 0
    while True:
        rows = tx.query(
            "SELECT link, seq, prev_hash, hash, body, body_z FROM audit_events WHERE chain = ? AND link >= ?"
            " ORDER BY link LIMIT ?",
            (base.chain, expected, _VERIFY_BATCH),
        )
        for link, seq, stored_prev, stored_hash, body, body_z in rows:
            link, seq = int(link), int(seq)
            if link != expected:
                return ChainReport(False, count, expected, f"event {expected} is missing"), prev_hash
            if stored_prev != prev_hash:
                return ChainReport(False, count, link, "the link to the previous event does not match"), prev_hash
            try:
                content = _event_bytes(body, body_z)
            except ValueError:
                return ChainReport(False, count, link, "the event's stored form is damaged"), prev_hash
            if chain_hash(link, prev_hash, content) != stored_hash:
                return ChainReport(False, count, link, "the event's content does not match its hash"), prev_hash
            if seq <= last_seq:
                # the trail-wide order must follow the chain's own: events re-ordered in the trail
                return ChainReport(False, count, link, "the event is out of order in the trail"), prev_hash
            if link in anchored:
                seen_at[link] = stored_hash
            prev_hash, expected, count, last_seq = stored_hash, link + 1, count + 1, seq
        if len(rows) < _VERIFY_BATCH:
            break
    return ChainReport(True, count), prev_hash


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
    """The newest event of the whole trail (its trail-wide number and hash); 0 and the genesis when none."""
    row = tx.query_one("SELECT seq, hash, chain, link FROM audit_events ORDER BY seq DESC LIMIT 1")
    if row is None:
        return AuditEntry(0, GENESIS_HASH)
    return AuditEntry(int(row[0]), str(row[1]), str(row[2]), int(row[3]))


def count_audit_events(tx: Tx) -> int:
    """How many events the trail holds."""
    row = tx.query_one("SELECT COUNT(*) FROM audit_events")
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One link of a chain as stored: what an export line carries."""

    seq: int
    prev_hash: str
    hash: str
    body: bytes
    chain: str = SHARED_CHAIN
    link: int = 0


def stored_events(
    tx: Tx, *, after: int, through: int, limit: int = _VERIFY_BATCH, chain: str = SHARED_CHAIN
) -> list[StoredEvent]:
    """Events of ``chain`` with ``after < link <= through`` in chain order, at most ``limit`` (page with ``after``)."""
    rows = tx.query(
        "SELECT seq, prev_hash, hash, body, body_z, link FROM audit_events WHERE chain = ? AND link > ? AND link <= ?"
        " ORDER BY link LIMIT ?",
        (chain, after, through, limit),
    )
    return [StoredEvent(int(r[0]), str(r[1]), str(r[2]), _event_bytes(r[3], r[4]), chain, int(r[5])) for r in rows]


def month_extents(tx: Tx, month: int) -> list[tuple[str, int, int]]:
    """For each chain with events stored in ``month``: (chain, first link, last link) there."""
    rows = tx.query(
        "SELECT chain, MIN(link), MAX(link) FROM audit_events WHERE month = ? GROUP BY chain ORDER BY chain", (month,)
    )
    return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]


def stored_months(tx: Tx) -> list[int]:
    """The months (yyyymm) that hold events, oldest first."""
    return [int(r[0]) for r in tx.query("SELECT DISTINCT month FROM audit_events ORDER BY month")]


def advance_chain_base(tx: Tx, chain: str, through: AuditEntry) -> None:
    """Make ``through`` (a link of ``chain``, exported and checkpointed) the base its stored part starts after."""
    tx.execute(
        "UPDATE audit_chains SET base_link = ?, base_hash = ? WHERE chain = ? AND base_link < ?",
        (through.link, through.hash, chain, through.link),
    )


def delete_audit_month(tx: Tx, month: int) -> int:
    """Remove every event stored in ``month`` (the single-table form; partitions are dropped whole)."""
    row = tx.query_one("SELECT COUNT(*) FROM audit_events WHERE month = ?", (month,))
    tx.execute("DELETE FROM audit_event_patients WHERE month = ?", (month,))
    tx.execute("DELETE FROM audit_events WHERE month = ?", (month,))
    return int(row[0]) if row else 0


def next_month(month: int) -> int:
    """The month after ``month`` (yyyymm).

    >>> next_month(202611), next_month(202612)
    (202612, 202701)
    """
    return (month // 100 + 1) * 100 + 1 if month % 100 >= 12 else month + 1


def ensure_audit_months(tx: Tx, months: Iterable[int]) -> int:
    """Make sure each month has its partition (PostgreSQL; SQLite has one table); returns how many events were
    moved out of the default partition into a partition made now."""
    if tx.dialect != "postgresql":
        return 0
    moved = 0
    for month in sorted(set(months)):
        row = tx.query_one("SELECT audit_ensure_month(?)", (month,))
        moved += int(row[0]) if row and row[0] is not None else 0
    return moved


@dataclass(frozen=True, slots=True)
class AuditPartition:
    """One month of the trail as stored: its partition (PostgreSQL) and how many events it holds."""

    month: int
    events: int
    partition: str | None


def audit_partitions(tx: Tx) -> tuple[list[AuditPartition], int]:
    """Every month holding events or having a partition, oldest first, and the events in the default partition
    (PostgreSQL: an event whose month had no partition; always 0 on SQLite)."""
    counts = {int(r[0]): int(r[1]) for r in tx.query("SELECT month, COUNT(*) FROM audit_events GROUP BY month")}
    if tx.dialect != "postgresql":
        return [AuditPartition(m, n, None) for m, n in sorted(counts.items())], 0
    rows = tx.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass('audit_events')"
    )
    parts = {int(str(r[0]).rsplit("_m", 1)[1]): str(r[0]) for r in rows if str(r[0]).startswith("audit_events_m")}
    months = sorted(set(counts) | set(parts))
    return [AuditPartition(m, counts.get(m, 0), parts.get(m)) for m in months], default_partition_events(tx)


def default_partition_events(tx: Tx) -> int:
    """Events in the default partition (PostgreSQL: their month had no partition); 0 on SQLite. Cheap: the
    default partition is empty unless something went wrong."""
    if tx.dialect != "postgresql":
        return 0
    row = tx.query_one("SELECT COUNT(*) FROM audit_events_default")
    return int(row[0]) if row else 0


def drop_audit_month(tx: Tx, month: int) -> int:
    """Remove every event stored in ``month``: its partitions dropped whole on PostgreSQL (and any of its events
    in the default partition deleted), its rows deleted on SQLite. Returns how many events were removed."""
    if tx.dialect != "postgresql":
        return delete_audit_month(tx, month)
    removed = delete_audit_month(tx, month) if _in_default(tx, month) else 0
    part = tx.query_one("SELECT to_regclass(?)::text", (f"audit_events_m{month}",))
    if part and part[0]:
        row = tx.query_one(f"SELECT COUNT(*) FROM audit_events_m{int(month)}")  # noqa: S608 - an integer
        removed += int(row[0]) if row else 0
        tx.execute(f"DROP TABLE audit_event_patients_m{int(month)}")
        tx.execute(f"DROP TABLE audit_events_m{int(month)}")
    return removed


def _in_default(tx: Tx, month: int) -> bool:
    row = tx.query_one("SELECT EXISTS (SELECT 1 FROM audit_events_default WHERE month = ?)", (month,))
    return bool(row and row[0])


def unshipped_segments(tx: Tx, chains: Sequence[str], sink: str) -> list[str]:
    """Which of these chains are closed segments not yet shipped to ``sink`` (retention must not drop them)."""
    waiting = []
    for chain in chains:
        row = tx.query_one(
            "SELECT c.closed_at, s.state FROM audit_chains c LEFT JOIN audit_shipments s"
            " ON s.chain = c.chain AND s.sink = ? WHERE c.chain = ?",
            (sink, chain),
        )
        if row is not None and row[0] is not None and row[1] != "shipped":
            waiting.append(chain)
    return waiting
