"""The cohort facts read model: per person, the compact facts the rules need, kept up to date incrementally.

Tables (``0611_cohort_facts.sql``, owned here): ``cohort_fact_person`` (from golden Patients: NHS number, birth
date, postcode district and borough, GP practice), ``cohort_fact_patient`` (each Patient id of a person → the
person, from the golden Patient's links), ``cohort_fact_condition`` (the SNOMED codes of Conditions that count)
and ``cohort_fact_encounter`` (emergency stays and A&E attendances with their periods and trust), keyed by the
resource and the Patient id the record names — so a merge or an unmerge, which changes only golden Patients,
re-keys no clinical fact.

:meth:`CohortFacts.refresh` follows the view's change feed (:meth:`bcconnect.view.View.population_changes`) from
the cursor in ``cohort_fact_cursor``, one page per transaction: the page's facts and the cursor after it commit
together, so a crash loses nothing and applies nothing twice (applying a current row is idempotent anyway). Two
workers refreshing at once do not fight: a page is written only if the cursor is still where it was read.

People in the objection register have no facts: the view leaves their rows out, every page's transaction
deletes the facts of whoever objects at that moment, and the objectors' ids are kept (``cohort_fact_withheld``)
so that one who withdraws the objection is read again in full. :meth:`CohortFacts.rebuild` empties the model and
reads everything again; the two agree (a test holds them to it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import orjson

from bcconnect.cohorts._extract import (
    FOREVER,
    GoldenFacts,
    condition_codes,
    encounter_event,
    golden_facts,
    is_golden_patient,
    subject_patient,
)
from bcconnect.cohorts._tables import objecting_ids
from bcconnect.store import ChangedResource, Tx
from bcconnect.view import View

#: the types the facts come from, in the order a refresh follows them
FACT_TYPES = ("Patient", "Condition", "Encounter")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: an open-ended period's end, in microseconds (datetime.max)
FOREVER_US = (FOREVER - _EPOCH) // _US
_CHUNK = 500


def to_us(moment: datetime) -> int:
    """Microseconds since 1970 (UTC): how the facts hold instants (exact for Python datetimes)."""
    return (moment - _EPOCH) // _US


def from_us(value: int) -> datetime:
    """The instant :func:`to_us` gave."""
    return _EPOCH + timedelta(microseconds=value)


@dataclass
class FactBatch:
    """Facts worked out from a set of rows, to apply in one transaction (a resource's old facts go first)."""

    #: persons whose golden Patient was read (facts, or None: retired, deleted or no longer golden)
    persons: dict[str, GoldenFacts | None] = field(default_factory=dict)
    #: Condition id → (Patient id, codes) — empty codes: no facts (deleted, resolved, refuted, not SNOMED)
    conditions: dict[str, tuple[str | None, frozenset[str]]] = field(default_factory=dict)
    #: Encounter id → (Patient id, kind, start µs, end µs, trust), or None: no facts
    encounters: dict[str, tuple[str, str, int, int, str | None] | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.persons) + len(self.conditions) + len(self.encounters)


def facts_of(rows: Iterable[ChangedResource], places: Mapping[str, str]) -> FactBatch:
    """The facts of these current rows (as the view hands them over: as stored, deletions without a body)."""
    batch = FactBatch()
    for row in rows:
        item, body = row.resource, row.resource.body
        if item.resource_type == "Patient":
            if body is None or item.deleted:
                batch.persons[item.id] = None
            elif b'"golden"' in body:
                resource = orjson.loads(body)
                if is_golden_patient(resource):
                    batch.persons[item.id] = golden_facts(resource, places)
            # a trust's own Patient: its person's golden Patient carries what the rules need
        elif item.resource_type == "Condition":
            codes: frozenset[str] = frozenset()
            patient = None
            if body is not None and not item.deleted and b"snomed" in body:
                resource = orjson.loads(body)
                patient = subject_patient(resource)
                codes = frozenset(condition_codes(resource)) if patient is not None else frozenset()
            batch.conditions[item.id] = (patient, codes)
        elif item.resource_type == "Encounter":
            event = None
            if body is not None and not item.deleted and (b'"IMP"' in body or b'"EMER"' in body):
                resource = orjson.loads(body)
                patient = subject_patient(resource)
                found = encounter_event(resource) if patient is not None else None
                if patient is not None and found is not None:
                    kind, start, end = found
                    event = (patient, kind, to_us(start), to_us(end), row.source)
            batch.encounters[item.id] = event
    return batch


def apply_facts(tx: Tx, batch: FactBatch) -> None:
    """Replace the facts of every resource in ``batch`` with what it says now."""
    if batch.conditions:
        tx.executemany("DELETE FROM cohort_fact_condition WHERE res_id = ?", [(i,) for i in batch.conditions])
        rows = [(rid, code, p) for rid, (p, codes) in batch.conditions.items() if p for code in sorted(codes)]
        if rows:
            tx.executemany("INSERT INTO cohort_fact_condition (res_id, code, patient_id) VALUES (?, ?, ?)", rows)
    if batch.encounters:
        tx.executemany("DELETE FROM cohort_fact_encounter WHERE res_id = ?", [(i,) for i in batch.encounters])
        events = [(rid, *event) for rid, event in batch.encounters.items() if event is not None]
        if events:
            tx.executemany(
                "INSERT INTO cohort_fact_encounter (res_id, patient_id, kind, start_us, end_us, trust)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                events,
            )
    if batch.persons:
        # a person's Patient ids are replaced whole: a source Patient that moved to another person (an unmerge)
        # is named by that person's golden Patient in the same snapshot, which re-points it below
        ids = [(p,) for p in batch.persons]
        tx.executemany("DELETE FROM cohort_fact_patient WHERE person_id = ?", ids)
        tx.executemany("DELETE FROM cohort_fact_person WHERE person_id = ?", ids)
        present = [f for f in batch.persons.values() if f is not None]
        if present:
            tx.executemany(
                "INSERT INTO cohort_fact_person (person_id, nhs_number, birth_date, district, borough, practice)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (f.person_id, f.nhs_number, f.birth_date.isoformat() if f.birth_date else None, f.district,
                     f.borough, f.practice)
                    for f in present
                ],
            )  # fmt: skip
            tx.executemany(
                "INSERT INTO cohort_fact_patient (patient_id, person_id) VALUES (?, ?)"
                " ON CONFLICT (patient_id) DO UPDATE SET person_id = excluded.person_id",
                [(pid, f.person_id) for f in present for pid in f.patient_ids],
            )


def purge_persons(tx: Tx, patient_ids: Iterable[str]) -> None:
    """Delete every fact held under these Patient ids (golden and source): an objector's."""
    ids = [(i,) for i in sorted(set(patient_ids))]
    if not ids:
        return
    tx.executemany("DELETE FROM cohort_fact_condition WHERE patient_id = ?", ids)
    tx.executemany("DELETE FROM cohort_fact_encounter WHERE patient_id = ?", ids)
    tx.executemany("DELETE FROM cohort_fact_patient WHERE patient_id = ? OR person_id = ?", [(i, i) for (i,) in ids])
    tx.executemany("DELETE FROM cohort_fact_person WHERE person_id = ?", ids)


def read_cursor(tx: Tx, resource_type: str) -> tuple[int, str]:
    """Where the facts of ``resource_type`` have been brought up to (``(0, "")``: never)."""
    row = tx.query_one("SELECT t, res_id FROM cohort_fact_cursor WHERE res_type = ?", (resource_type,))
    return (int(row[0]), str(row[1])) if row else (0, "")


def _write_cursor(tx: Tx, resource_type: str, after: tuple[int, str]) -> None:
    tx.execute(
        "INSERT INTO cohort_fact_cursor (res_type, t, res_id) VALUES (?, ?, ?)"
        " ON CONFLICT (res_type) DO UPDATE SET t = excluded.t, res_id = excluded.res_id",
        (resource_type, after[0], after[1]),
    )


def _withheld(tx: Tx) -> set[str]:
    return {str(r[0]) for r in tx.query("SELECT patient_id FROM cohort_fact_withheld")}


def _withhold(tx: Tx, objecting: frozenset[str]) -> list[str]:
    """Delete the objectors' facts and remember them; returns the ids no longer objecting (still remembered:
    they are forgotten only once read again)."""
    purge_persons(tx, objecting)
    before = _withheld(tx)
    new = sorted(objecting - before)
    if new:
        tx.executemany("INSERT INTO cohort_fact_withheld (patient_id) VALUES (?)", [(i,) for i in new])
    return sorted(before - objecting)


def clear_facts(tx: Tx) -> None:
    """Empty the read model (its cursors too): the next refresh reads everything."""
    for table in (
        "cohort_fact_condition",
        "cohort_fact_encounter",
        "cohort_fact_patient",
        "cohort_fact_person",
        "cohort_fact_cursor",
        "cohort_fact_withheld",
    ):
        tx.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one refresh did: rows read from the view (per type), pages written, persons read again."""

    rows: dict[str, int]
    pages: int
    reread: int
    until_t: int


def _apply_page(
    tx: Tx, *, resource_type: str, seen: tuple[int, str], to: tuple[int, str], batch: FactBatch
) -> tuple[int, str]:
    """Apply one page's facts and move the cursor past it, if the cursor is still where the page was read from;
    returns where the cursor is now."""
    now = read_cursor(tx, resource_type)
    if now != seen:
        return now  # another worker applied this page (or more) meanwhile: go on from there
    apply_facts(tx, batch)
    # whoever objects now has no facts, whatever this page held (the view read an older snapshot)
    _withhold(tx, objecting_ids(tx))
    _write_cursor(tx, resource_type, to)
    return to


class CohortFacts:
    """The read model over a view: ``refresh()`` brings it up to date, ``rebuild()`` starts it again."""

    def __init__(self, view: View, places: Mapping[str, str], *, page_size: int = 2000) -> None:
        self.view = view
        self.places = dict(places)
        self.page_size = page_size

    async def refresh(self) -> RefreshReport:
        """Apply everything that changed since the cursors, up to the logical time of the first read."""
        store = self.view.store
        until: int | None = None
        counts = dict.fromkeys(FACT_TYPES, 0)
        pages = 0
        for resource_type in FACT_TYPES:
            after = await store.read(partial(read_cursor, resource_type=resource_type))
            while True:
                page = await self.view.population_changes(
                    resource_type, after=after, until_t=until, limit=self.page_size
                )
                until = page.until_t
                if page.next_after is None:
                    break
                batch = facts_of(page.rows, self.places)
                counts[resource_type] += len(page.rows)

                after = await store.write(
                    partial(_apply_page, resource_type=resource_type, seen=after, to=page.next_after, batch=batch)
                )
                pages += 1
        reread = await self._settle_objections()
        return RefreshReport(counts, pages, reread, until or 0)

    async def _settle_objections(self) -> int:
        """Delete the facts of whoever objects now; read again the people who withdrew an objection."""
        store = self.view.store
        withdrawn = await store.write(lambda tx: _withhold(tx, objecting_ids(tx)))
        if not withdrawn:
            return 0
        batch = facts_of(await self.view.population_records(withdrawn), self.places)

        def write(tx: Tx) -> None:
            apply_facts(tx, batch)
            objecting = objecting_ids(tx)
            _withhold(tx, objecting)  # objected again meanwhile: gone again
            back = [(i,) for i in withdrawn if i not in objecting]
            tx.executemany("DELETE FROM cohort_fact_withheld WHERE patient_id = ?", back)

        await store.write(write)
        return len(withdrawn)

    async def rebuild(self) -> RefreshReport:
        """Empty the model and read everything again through the view."""
        await self.view.store.write(clear_facts)
        return await self.refresh()


def snapshot(tx: Tx) -> dict[str, list[tuple[object, ...]]]:
    """Every fact, sorted (what a test compares between an incremental model and a rebuilt one)."""
    tables: Sequence[tuple[str, str]] = (
        ("person", "SELECT person_id, nhs_number, birth_date, district, borough, practice FROM cohort_fact_person"),
        ("patient", "SELECT patient_id, person_id FROM cohort_fact_patient"),
        ("condition", "SELECT res_id, code, patient_id FROM cohort_fact_condition"),
        ("encounter", "SELECT res_id, patient_id, kind, start_us, end_us, trust FROM cohort_fact_encounter"),
    )
    return {name: sorted(tuple(r) for r in tx.query(sql)) for name, sql in tables}
