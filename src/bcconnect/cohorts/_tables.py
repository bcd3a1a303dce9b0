"""The cohorts' own tables (``0600_cohorts.sql``): computed runs, their members and the opt-out list's cache.

Every read of members filters by the *current* opt-out cache and objection register, so a person who opts out
or objects after a cohort was computed is gone from it (and from any export built from it) at once, without
waiting for the next computation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from bcconnect.security import NationalOptOut, objecting_patient_ids
from bcconnect.store import Tx, alias_closure


@dataclass(frozen=True, slots=True)
class Member:
    """One person in a computed cohort, with what the cohort page groups by."""

    person_id: str
    nhs_number: str | None
    borough: str | None
    practice: str | None


@dataclass(frozen=True, slots=True)
class CohortRun:
    """The last computation of one cohort."""

    group_id: str
    title: str
    description: str
    #: the definition as it was computed (JSON object), so the Group says what it holds
    definition: dict[str, object]
    computed_at: str
    version: int
    member_count: int
    removed_type1: int
    removed_type2: int
    removed_objection: int
    elapsed_ms: int

    @property
    def removed(self) -> int:
        """People the definition matched but the opt-out or an objection removed (a count, never who)."""
        return self.removed_type1 + self.removed_type2 + self.removed_objection


_RUN_COLUMNS = (
    "group_id, title, description, definition, computed_at, version, member_count, removed_type1, removed_type2, "
    "removed_objection, elapsed_ms"
)


def _run(row: Sequence[object]) -> CohortRun:
    definition = orjson.loads(str(row[3]))
    return CohortRun(
        group_id=str(row[0]),
        title=str(row[1]),
        description=str(row[2]),
        definition=definition if isinstance(definition, dict) else {},
        computed_at=str(row[4]),
        version=int(str(row[5])),
        member_count=int(str(row[6])),
        removed_type1=int(str(row[7])),
        removed_type2=int(str(row[8])),
        removed_objection=int(str(row[9])),
        elapsed_ms=int(str(row[10])),
    )


def read_run(tx: Tx, group_id: str) -> CohortRun | None:
    """The last computation of ``group_id`` (None: never computed, or no such cohort)."""
    row = tx.query_one(f"SELECT {_RUN_COLUMNS} FROM cohort_runs WHERE group_id = ?", (group_id,))  # noqa: S608 - constant columns
    return _run(row) if row is not None else None


def list_runs(tx: Tx) -> list[CohortRun]:
    """Every computed cohort, by id."""
    return [_run(r) for r in tx.query(f"SELECT {_RUN_COLUMNS} FROM cohort_runs ORDER BY group_id")]  # noqa: S608 - constant columns


def save_run(tx: Tx, run: CohortRun, members: Iterable[Member] | None) -> None:
    """Replace a cohort's computation and its members (one transaction: readers see the old or the new);
    ``members`` None: they were written already in this transaction (by the SQL evaluation)."""
    if members is not None:
        tx.execute("DELETE FROM cohort_members WHERE group_id = ?", (run.group_id,))
    tx.execute("DELETE FROM cohort_runs WHERE group_id = ?", (run.group_id,))
    tx.execute(
        f"INSERT INTO cohort_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
        (
            run.group_id,
            run.title,
            run.description,
            orjson.dumps(run.definition, option=orjson.OPT_SORT_KEYS).decode(),
            run.computed_at,
            run.version,
            run.member_count,
            run.removed_type1,
            run.removed_type2,
            run.removed_objection,
            run.elapsed_ms,
        ),
    )
    if members is not None:
        tx.executemany(
            "INSERT INTO cohort_members (group_id, person_id, nhs_number, borough, practice) VALUES (?, ?, ?, ?, ?)",
            [(run.group_id, m.person_id, m.nhs_number, m.borough, m.practice) for m in members],
        )


def drop_run(tx: Tx, group_id: str) -> None:
    """Forget a cohort that is no longer defined."""
    tx.execute("DELETE FROM cohort_members WHERE group_id = ?", (group_id,))
    tx.execute("DELETE FROM cohort_runs WHERE group_id = ?", (group_id,))


def save_opt_out(tx: Tx, opt_out: NationalOptOut, loaded_at: str) -> None:
    """Replace the cached opt-out list with ``opt_out`` (the configured file, as just read)."""
    tx.execute("DELETE FROM cohort_opt_out")
    tx.executemany(
        "INSERT INTO cohort_opt_out (nhs_number, opt_out_type, loaded_at) VALUES (?, ?, ?)",
        [(n, opt_out.kind(n) or "2", loaded_at) for n in sorted(opt_out.nhs_numbers)],
    )


def cached_opt_out(tx: Tx) -> NationalOptOut:
    """The opt-out list as last loaded (empty if never loaded)."""
    rows = tx.query("SELECT nhs_number, opt_out_type FROM cohort_opt_out")
    return NationalOptOut(frozenset(str(r[0]) for r in rows), frozenset(str(r[0]) for r in rows if r[1] == "1"))


def _same_person(tx: Tx, patient_id: str) -> list[str]:
    return alias_closure(tx, "Patient", [patient_id])[patient_id]


def objecting_ids(tx: Tx) -> frozenset[str]:
    """Every Patient id (golden and source) of every person in the objection register."""
    return objecting_patient_ids(tx, _same_person)


def current_members(tx: Tx, group_id: str) -> list[Member]:
    """The members of a computed cohort minus anyone now opted out or objecting, by person id."""
    rows = tx.query(
        "SELECT m.person_id, m.nhs_number, m.borough, m.practice FROM cohort_members m "
        "LEFT JOIN cohort_opt_out o ON o.nhs_number = m.nhs_number "
        "WHERE m.group_id = ? AND o.nhs_number IS NULL ORDER BY m.person_id",
        (group_id,),
    )
    objecting = objecting_ids(tx)
    return [Member(str(r[0]), r[1], r[2], r[3]) for r in rows if str(r[0]) not in objecting]
