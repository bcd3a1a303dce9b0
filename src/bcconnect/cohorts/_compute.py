"""Computing cohorts: over the facts read model in SQL, with a whole-view reading kept as the oracle.

:meth:`Cohorts.compute` first brings the cohort facts read model (:mod:`bcconnect.cohorts._facts`) up to date
from what changed in the view since its cursor, then evaluates every definition over it in one write transaction
(:mod:`bcconnect.cohorts._evaluate`): members, opt-out and objection removals and the run are written together.
No resource JSON is read for a computation except the changes since the last one.

:meth:`Cohorts.collect` with :class:`Evaluator` is the same reading done the slow, plain way — every golden
Patient, Condition and Encounter through :meth:`bcconnect.view.View.export_batch` (re-pointed to the person,
objectors left out), folded into :class:`PersonFacts` and evaluated in Python. Tests hold the two to the same
answers; it is not on any request or schedule path.

Events are counted as *distinct*: two records of one kind (emergency stays, or A&E attendances) of one person
whose periods overlap are one event, whichever trusts sent them (the same stay sent by two feeds, a trust that
sent one stay twice); an event is dated by its earliest start and is in "the last N months" when that start is
after the computation time minus N calendar months and not after the computation time. People in the objection
register are never evaluated (``removed_objection`` is how many persons the register holds).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.cohorts._definitions import Definitions, Rule, load_definitions, load_places
from bcconnect.cohorts._evaluate import SqlEvaluator
from bcconnect.cohorts._extract import (
    ATTENDANCES,
    condition_codes,
    distinct_starts,
    encounter_event,
    golden_facts,
    months_before,
    parse_instant,
    subject_patient,
)
from bcconnect.cohorts._facts import CohortFacts, RefreshReport
from bcconnect.cohorts._tables import CohortRun, drop_run, list_runs, objecting_ids, save_opt_out, save_run
from bcconnect.config import Settings
from bcconnect.security import NationalOptOut
from bcconnect.store import Tx, canonical_ids
from bcconnect.view import View

__all__ = [
    "COHORT_READS",
    "Cohorts",
    "Evaluator",
    "FactCollector",
    "PersonFacts",
    "distinct_starts",
    "months_before",
    "parse_instant",
]


@dataclass
class PersonFacts:
    """What the cohort rules look at for one person (golden Patient)."""

    person_id: str
    nhs_number: str | None = None
    birth_date: date | None = None
    borough: str | None = None
    practice: str | None = None
    condition_sets: set[str] = field(default_factory=set)
    stays: list[tuple[datetime, datetime]] = field(default_factory=list)
    attendances: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: distinct event starts per kind, worked out once (the periods do not change after collection)
    starts: dict[str, list[datetime]] = field(default_factory=dict, repr=False, compare=False)


class FactCollector:
    """Folds the view's Patients, Conditions and Encounters into one :class:`PersonFacts` per person."""

    def __init__(self, definitions: Definitions, places: Mapping[str, str]) -> None:
        self.definitions = definitions
        self.places = places
        self.persons: dict[str, PersonFacts] = {}
        #: facts about Patients that are not a golden one (unlinked records): kept by their own id
        self._orphans: dict[str, PersonFacts] = {}

    def _facts(self, person_id: str) -> PersonFacts:
        found = self.persons.get(person_id) or self._orphans.get(person_id)
        if found is None:
            found = self._orphans[person_id] = PersonFacts(person_id)
        return found

    def patient(self, resource: Mapping[str, Any]) -> None:
        """A golden Patient: the person, with NHS number, birth date, borough and practice."""
        found = golden_facts(resource, self.places)
        if found is None:
            return  # a trust's own record, or a person merged into another (replaced-by)
        facts = self._orphans.pop(found.person_id, None) or PersonFacts(found.person_id)
        facts.nhs_number = found.nhs_number
        facts.birth_date = found.birth_date
        facts.borough = found.borough
        facts.practice = found.practice
        self.persons[found.person_id] = facts

    def condition(self, resource: Mapping[str, Any]) -> None:
        """A Condition: which listed sets its SNOMED code is in, if it is current and not refuted."""
        person = subject_patient(resource)
        if person is None:
            return
        sets: set[str] = set()
        for code in condition_codes(resource):
            sets.update(self.definitions.set_of_code.get(code, ()))
        if sets:
            self._facts(person).condition_sets |= sets

    def encounter(self, resource: Mapping[str, Any]) -> None:
        """An Encounter: an emergency stay (IMP with an emergency admission method) or an A&E attendance (EMER)."""
        person = subject_patient(resource)
        event = encounter_event(resource) if person is not None else None
        if person is None or event is None:
            return
        kind, start, end = event
        (self._facts(person).attendances if kind == ATTENDANCES else self._facts(person).stays).append((start, end))


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


class Evaluator:
    """Evaluates rules for persons at one computation time (windows worked out once)."""

    def __init__(self, as_of: datetime) -> None:
        self.as_of = as_of
        self._edges: dict[int, datetime] = {}

    def edge(self, months: int) -> datetime:
        """The window's exclusive lower edge for ``months``."""
        found = self._edges.get(months)
        if found is None:
            found = self._edges[months] = months_before(self.as_of, months)
        return found

    def _count(self, facts: PersonFacts, kind: str, months: int) -> int:
        starts = facts.starts.get(kind)
        if starts is None:
            periods = facts.stays if kind == "emergency_admissions" else facts.attendances
            starts = facts.starts[kind] = distinct_starts(periods)
        edge = self.edge(months)
        return sum(1 for s in starts if edge < s <= self.as_of)

    def matches(self, rule: Rule, facts: PersonFacts) -> bool:
        """Whether ``facts`` satisfy ``rule``."""
        kind = rule.kind
        if kind == "all":
            return all(self.matches(p, facts) for p in rule.parts)
        if kind == "any":
            return any(self.matches(p, facts) for p in rule.parts)
        if kind == "not":
            return not self.matches(rule.parts[0], facts)
        if kind == "borough":
            return facts.borough in rule.names
        if kind == "practice":
            return facts.practice in rule.names
        value: int | None
        if kind == "conditions":
            value = len(facts.condition_sets & set(rule.names))
        elif kind == "age":
            value = _age(facts.birth_date, self.as_of.date())
        else:
            if not (facts.stays if kind == "emergency_admissions" else facts.attendances):
                value = 0
            else:
                value = self._count(facts, kind, rule.months)
        if value is None:
            return False
        return (rule.minimum is None or value >= rule.minimum) and (rule.maximum is None or value <= rule.maximum)


#: the resource types a computation reads through the view
COHORT_READS = ("Patient", "Condition", "Encounter")


class Cohorts:
    """Cohort computation and reads over a view (``[cohorts]`` and ``[security] national_opt_out_file``)."""

    def __init__(
        self,
        view: View,
        definitions: Definitions | None = None,
        *,
        opt_out_file: Path | None = None,
        places: Mapping[str, str] | None = None,
    ) -> None:
        self.view = view
        self.definitions = definitions or load_definitions()
        self.opt_out_file = opt_out_file
        self.places = dict(places or load_places())
        #: what the last computation's refresh of the facts did (None before the first)
        self.last_refresh: RefreshReport | None = None

    @classmethod
    def from_settings(cls, settings: Settings, view: View) -> Cohorts:
        """Definitions from ``[cohorts] definitions`` (or the packaged set), the opt-out file from ``[security]``."""
        defs = settings.cohorts.definitions
        opt_out = settings.security.national_opt_out_file
        return cls(
            view,
            load_definitions(settings.resolve(defs)) if defs else None,
            opt_out_file=settings.resolve(opt_out) if opt_out else None,
        )

    async def collect(self) -> FactCollector:
        """Every person's facts, read through the view (objectors already left out by it).

        The three types are read concurrently (the store has a pool of readers); the collector accepts facts
        in any order (a Condition may arrive before its person's golden Patient).
        """
        collector = FactCollector(self.definitions, self.places)
        folds = {"Patient": collector.patient, "Condition": collector.condition, "Encounter": collector.encounter}
        # bytes that must be in a body for it to matter: skip parsing the rest (source Patients, clinic visits)
        needles = {"Patient": (b'"golden"',), "Condition": (b"snomed",), "Encounter": (b'"IMP"', b'"EMER"')}

        async def read(resource_type: str) -> None:
            fold, wanted = folds[resource_type], needles[resource_type]
            after = ""
            while True:
                batch = await self.view.export_batch(resource_type, after_id=after)
                if not batch:
                    return
                for stored in batch:
                    body = stored.body
                    if body is not None and any(n in body for n in wanted):
                        fold(orjson.loads(body))
                after = batch[-1].id

        async with anyio.create_task_group() as group:
            for resource_type in COHORT_READS:
                group.start_soon(read, resource_type)
        return collector

    @property
    def facts(self) -> CohortFacts:
        """The facts read model over this view."""
        return CohortFacts(self.view, self.places)

    async def compute(
        self, cohort_ids: Iterable[str] | None = None, *, as_of: datetime | None = None
    ) -> list[CohortRun]:
        """Compute (and store) the cohorts named, or all; returns their runs. Unknown names: ValueError."""
        started = time.perf_counter()
        wanted = list(cohort_ids) if cohort_ids is not None else [c.id for c in self.definitions.cohorts]
        unknown = [c for c in wanted if self.definitions.cohort(c) is None]
        if unknown:
            known = ", ".join(c.id for c in self.definitions.cohorts)
            raise ValueError(f"no cohort named {', '.join(unknown)} (defined: {known})")
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        opt_out = NationalOptOut.load(self.opt_out_file)
        self.last_refresh = await self.facts.refresh()
        computed_at = as_of.isoformat(timespec="seconds").replace("+00:00", "Z")
        defined = {c.id for c in self.definitions.cohorts}
        definitions = self.definitions

        def evaluate(tx: Tx) -> list[CohortRun]:
            previous = {r.group_id: r for r in list_runs(tx)}
            save_opt_out(tx, opt_out, datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
            # the register as it is now, in this transaction: whatever the facts hold, an objector is no member
            objecting = objecting_ids(tx)
            canonical = canonical_ids(tx, "Patient", objecting)
            objecting_persons = {canonical.get(i, i) for i in objecting}
            evaluator = SqlEvaluator(tx, definitions, as_of, sorted(objecting | objecting_persons))
            runs = []
            for cohort_id in wanted:
                definition = definitions.cohort(cohort_id)
                assert definition is not None
                done = evaluator.save_members(definition)
                before = previous.get(cohort_id)
                runs.append(
                    CohortRun(
                        group_id=definition.id,
                        title=definition.title,
                        description=definition.description,
                        definition=definition.as_json(),
                        computed_at=computed_at,
                        version=(before.version + 1) if before else 1,
                        member_count=done.member_count,
                        removed_type1=done.removed_type1,
                        removed_type2=done.removed_type2,
                        removed_objection=len(objecting_persons),
                        elapsed_ms=round((time.perf_counter() - started) * 1000),
                    )
                )
            evaluator.close()
            for run in runs:
                save_run(tx, run, None)
            for stale in set(previous) - defined:
                drop_run(tx, stale)
            return runs

        return await self.view.store.write(evaluate)
