"""Table access for the patient index, on a store ``Tx`` ('?' placeholders, both dialects).

Every change of a link writes a row to ``identity_link_history`` in the same transaction: the history is
append-only and says who (``actor``: ``system`` or a steward) changed what, when, and under which rules version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from bcconnect.identity._decide import LinkSource, LinkState
from bcconnect.identity._normalise import Demographics
from bcconnect.identity._plan import Candidate
from bcconnect.store import Tx

#: candidates read per incoming record at most: a huge block says little and would cost the online path
MAX_CANDIDATES = 500
SYSTEM_ACTOR = "system"

_RECORD_COLUMNS = (
    "patient_id, ods_code, nhs_number, verification, mrn, given, family, birth_date, sex, postcode, phone, "
    "replaced_by, given_other"
)
_RECORD_WIDTH = 13
_LINK_COLUMNS = "patient_id, person_id, state, source, score, rule, rules_version, updated_at"


def utc_now() -> str:
    """The current instant as stored (UTC, ISO 8601, microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Link:
    """One link between a source record and a person."""

    patient_id: str
    person_id: str
    state: LinkState
    source: LinkSource
    score: float | None
    rule: str
    rules_version: str
    updated_at: str = ""


def _link(row: Sequence[Any]) -> Link:
    return Link(
        str(row[0]), str(row[1]), LinkState(row[2]), LinkSource(row[3]),
        None if row[4] is None else float(row[4]), str(row[5]), str(row[6]), str(row[7]),
    )  # fmt: skip


def record_from_row(row: Sequence[Any]) -> Demographics:
    """A :class:`Demographics` from a row selected with the record columns."""
    return Demographics(
        patient_id=str(row[0]), ods_code=row[1], nhs_number=row[2], verification=row[3], mrn=row[4],
        given=row[5], family=row[6], birth_date=date.fromisoformat(row[7]) if row[7] else None,
        sex=row[8], postcode=row[9], phone=row[10], replaced_by=row[11], given_other=row[12],
    )  # fmt: skip


def save_record(tx: Tx, record: Demographics, keys: Sequence[str], *, source_key: str | None, now: str) -> None:
    """Insert or update a record's normalised fields and replace its blocking keys."""
    values = (
        record.patient_id, record.ods_code, source_key, record.nhs_number, record.verification, record.mrn,
        record.given, record.family, record.birth_date.isoformat() if record.birth_date else None, record.sex,
        record.postcode, record.phone, record.replaced_by, record.given_other, now,
    )  # fmt: skip
    tx.execute(
        "INSERT INTO identity_record (patient_id, ods_code, source_key, nhs_number, verification, mrn, given, "
        "family, birth_date, sex, postcode, phone, replaced_by, given_other, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (patient_id) DO UPDATE SET "
        "ods_code = excluded.ods_code, source_key = excluded.source_key, nhs_number = excluded.nhs_number, "
        "verification = excluded.verification, mrn = excluded.mrn, given = excluded.given, "
        "family = excluded.family, birth_date = excluded.birth_date, sex = excluded.sex, "
        "postcode = excluded.postcode, phone = excluded.phone, replaced_by = excluded.replaced_by, "
        "given_other = excluded.given_other, "
        "updated_at = excluded.updated_at",
        values,
    )
    replace_keys(tx, record.patient_id, keys)


def replace_keys(tx: Tx, patient_id: str, keys: Sequence[str]) -> None:
    """Replace a record's blocking keys (the rules' blocking may have changed since it was saved)."""
    tx.execute("DELETE FROM identity_block WHERE patient_id = ?", (patient_id,))
    tx.executemany(
        "INSERT INTO identity_block (block_key, patient_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(key, patient_id) for key in dict.fromkeys(keys)],
    )


def record_ids(tx: Tx, *, after: str | None, limit: int) -> list[str]:
    """The next ``limit`` stored record ids in id order after ``after`` (keyset paging over the index)."""
    rows = tx.query(
        "SELECT patient_id FROM identity_record WHERE patient_id > ? ORDER BY patient_id LIMIT ?", (after or "", limit)
    )
    return [str(r[0]) for r in rows]


def load_record(tx: Tx, patient_id: str) -> Demographics | None:
    """The stored normalised record of a source Patient, or None."""
    row = tx.query_one(
        f"SELECT {_RECORD_COLUMNS} FROM identity_record WHERE patient_id = ?",  # noqa: S608 - constant columns
        (patient_id,),
    )
    return record_from_row(row) if row else None


def load_records(tx: Tx, patient_ids: Iterable[str]) -> list[Demographics]:
    """The stored records of several source Patients (unknown ids are skipped)."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    sql = f"SELECT {_RECORD_COLUMNS} FROM identity_record WHERE patient_id IN ({marks})"  # noqa: S608 - placeholders
    rows = tx.query(sql, ids)
    return [record_from_row(r) for r in rows]


def candidates(tx: Tx, keys: Sequence[str], *, exclude: str) -> list[Candidate]:
    """Records that share a blocking key with the incoming one, each with the person it is matched to."""
    if not keys:
        return []
    cols = ", ".join(f"r.{c.strip()}" for c in _RECORD_COLUMNS.split(","))
    marks = ", ".join("?" * len(keys))
    rows = tx.query(
        f"SELECT DISTINCT {cols}, l.person_id FROM identity_block b "  # noqa: S608 - constants and placeholders
        "JOIN identity_record r ON r.patient_id = b.patient_id "
        "JOIN identity_link l ON l.patient_id = r.patient_id AND l.state = 'MATCH' "
        f"WHERE b.block_key IN ({marks}) AND b.patient_id <> ? LIMIT {MAX_CANDIDATES}",
        [*keys, exclude],
    )
    return [Candidate(record_from_row(r[:_RECORD_WIDTH]), str(r[_RECORD_WIDTH])) for r in rows]


def links_of(tx: Tx, patient_id: str) -> list[Link]:
    """Every link of a source record."""
    sql = f"SELECT {_LINK_COLUMNS} FROM identity_link WHERE patient_id = ? ORDER BY person_id"  # noqa: S608
    rows = tx.query(sql, (patient_id,))
    return [_link(r) for r in rows]


def links_to(tx: Tx, person_id: str, states: Sequence[LinkState] = (LinkState.MATCH, LinkState.REDIRECT)) -> list[Link]:
    """The links of a person in the given states (default: the records that make it up)."""
    marks = ", ".join("?" * len(states))
    rows = tx.query(
        f"SELECT {_LINK_COLUMNS} FROM identity_link "  # noqa: S608 - constant columns and placeholders
        f"WHERE person_id = ? AND state IN ({marks}) ORDER BY patient_id",
        [person_id, *(s.value for s in states)],
    )
    return [_link(r) for r in rows]


def matched_person(tx: Tx, patient_id: str) -> str | None:
    """The person a record is MATCHed or REDIRECTed to, or None."""
    row = tx.query_one(
        "SELECT person_id FROM identity_link WHERE patient_id = ? AND state IN ('MATCH', 'REDIRECT') "
        "ORDER BY state LIMIT 1",
        (patient_id,),
    )
    return str(row[0]) if row else None


def set_link(tx: Tx, link: Link, *, actor: str, reason: str | None = None) -> None:
    """Insert or replace a link (a second MATCH for the record violates the unique index: ConflictError)."""
    tx.execute(
        f"INSERT INTO identity_link ({_LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608 - constant
        "ON CONFLICT (patient_id, person_id) DO UPDATE SET state = excluded.state, source = excluded.source, "
        "score = excluded.score, rule = excluded.rule, rules_version = excluded.rules_version, "
        "updated_at = excluded.updated_at",
        (link.patient_id, link.person_id, link.state.value, link.source.value, link.score, link.rule,
         link.rules_version, link.updated_at),
    )  # fmt: skip
    _history(tx, link, "set", actor=actor, reason=reason)
    _dirty(tx, link.person_id)


def remove_link(tx: Tx, link: Link, *, actor: str, reason: str | None = None, now: str) -> None:
    """Delete a link, keeping it in the history."""
    tx.execute("DELETE FROM identity_link WHERE patient_id = ? AND person_id = ?", (link.patient_id, link.person_id))
    _dirty(tx, link.person_id)
    _history(tx, Link(link.patient_id, link.person_id, link.state, link.source, link.score, link.rule,
                      link.rules_version, now), "remove", actor=actor, reason=reason)  # fmt: skip


def _dirty(tx: Tx, person_id: str) -> None:
    # the person's golden Patient and id are settled before the transaction commits (see _persons)
    tx.execute("INSERT INTO identity_person_dirty (person_id) VALUES (?) ON CONFLICT DO NOTHING", (person_id,))


def _history(tx: Tx, link: Link, action: str, *, actor: str, reason: str | None) -> None:
    tx.execute(
        "INSERT INTO identity_link_history (patient_id, person_id, action, state, source, score, rule, "
        "rules_version, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (link.patient_id, link.person_id, action, link.state.value, link.source.value, link.score, link.rule,
         link.rules_version, actor, reason, link.updated_at),
    )  # fmt: skip


def ensure_person(tx: Tx, person_id: str, *, founded_by: str, now: str) -> None:
    """Create a person row unless it exists."""
    tx.execute(
        "INSERT INTO identity_person (person_id, founded_by, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (person_id) DO NOTHING",
        (person_id, founded_by, now),
    )


def lock_keys(tx: Tx, keys: Iterable[str]) -> None:
    """Serialise concurrent linkers that share a blocking key (PostgreSQL; SQLite has one writer anyway).

    Without this two transactions could each miss the other's uncommitted record and found two persons for
    one. Keys are locked in sorted order, so two linkers never wait on each other in a cycle.
    """
    if tx.dialect != "postgresql":
        return
    numbers = sorted({int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big", signed=True) for k in keys})
    if numbers:
        # one round trip for every key of the page, taken in ascending order
        tx.query(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(?::bigint[]) AS k ORDER BY 1) AS keys", (numbers,)
        )
