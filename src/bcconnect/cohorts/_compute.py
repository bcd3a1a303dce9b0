"""Computing cohorts over the person-centred view.

The clinical data comes only through :meth:`bcconnect.view.View.export_batch` — the view as a population use
sees it: golden Patients, every reference re-pointed to the person (so a person's records from all four trusts
meet), and people in the objection register already left out (their records are never read for a cohort, so
they are counted only as a population: ``removed_objection`` is how many persons the register holds).

Events are counted as *distinct*: two records of one kind (emergency stays, or A&E attendances) of one person
whose periods overlap are one event, whichever trusts sent them (the same stay sent by two feeds, a trust that
sent one stay twice); an event is dated by its earliest start and is in "the last N months" when that start is
after the computation time minus N calendar months and not after the computation time.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.cohorts._definitions import (
    CohortDefinition,
    Definitions,
    Rule,
    borough_of,
    load_definitions,
    load_places,
)
from bcconnect.cohorts._tables import (
    CohortRun,
    Member,
    drop_run,
    list_runs,
    objecting_ids,
    save_opt_out,
    save_run,
)
from bcconnect.config import Settings
from bcconnect.fhir.constants import (
    ADMISSION_METHOD_EXTENSION,
    EMERGENCY_ADMISSION_METHODS,
    NHS_NUMBER_SYSTEM,
    ODS_ORGANIZATION_SYSTEM,
    SNOMED_SYSTEM,
)
from bcconnect.security import NationalOptOut
from bcconnect.store import Tx, canonical_ids
from bcconnect.view import View

_GOLDEN_CODE = "golden"
_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_NOT_TRUE = frozenset({"refuted", "entered-in-error"})
_FOREVER = datetime.max.replace(tzinfo=UTC)


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` minus whole calendar months (the day clipped to the month's length).

    >>> months_before(datetime(2026, 3, 31, 9, tzinfo=UTC), 1).isoformat()
    '2026-02-28T09:00:00+00:00'
    >>> months_before(datetime(2024, 2, 29, tzinfo=UTC), 12).date().isoformat()
    '2023-02-28'
    """
    total = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(total, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def parse_instant(text: object) -> datetime | None:
    """A FHIR dateTime as an aware UTC datetime (a date is its midnight UTC, no zone is UTC), or None."""
    if not isinstance(text, str) or len(text) < 4:
        return None
    try:
        if len(text) == 4:
            found = datetime(int(text), 1, 1, tzinfo=UTC)
        elif len(text) == 7:
            found = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        else:
            found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


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


def distinct_starts(periods: Iterable[tuple[datetime, datetime]]) -> list[datetime]:
    """The start of each distinct event: periods that overlap (directly or through others) are one event.

    >>> d = lambda h: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h)
    >>> [s.hour for s in distinct_starts([(d(0), d(30)), (d(2), d(28)), (d(40), d(50))])]
    [0, 16]
    """
    out: list[datetime] = []
    reach: datetime | None = None
    for start, end in sorted(periods):
        if reach is not None and start < reach:
            reach = max(reach, end)
            continue
        out.append(start)
        reach = end
    return out


def _codes(concept: object, system: str) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {
        str(c.get("code"))
        for c in concept.get("coding") or ()
        if isinstance(c, dict) and c.get("system") == system and c.get("code")
    }


def _any_codes(concept: object) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {str(c.get("code")) for c in concept.get("coding") or () if isinstance(c, dict) and c.get("code")}


def _subject(resource: Mapping[str, Any]) -> str | None:
    subject = resource.get("subject")
    if isinstance(subject, dict):
        ref = subject.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref.removeprefix("Patient/")
    return None


def _period(resource: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    period = resource.get("period")
    if not isinstance(period, dict):
        return None
    start = parse_instant(period.get("start"))
    if start is None:
        return None
    end = parse_instant(period.get("end")) or _FOREVER
    return start, max(end, start + timedelta(seconds=1))


def _admission_methods(resource: Mapping[str, Any]) -> set[str]:
    # UK Core carries the method on hospitalization; some senders put it on the Encounter itself
    stay = resource.get("hospitalization")
    carried = [
        *(resource.get("extension") or ()),
        *((stay.get("extension") or ()) if isinstance(stay, dict) else ()),
    ]
    found: set[str] = set()
    for ext in carried:
        if isinstance(ext, dict) and ext.get("url") == ADMISSION_METHOD_EXTENSION:
            found |= _any_codes(ext.get("valueCodeableConcept"))
    return found


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
        tags = (resource.get("meta") or {}).get("tag") or ()
        if not any(isinstance(t, dict) and t.get("code") == _GOLDEN_CODE for t in tags):
            return
        if resource.get("active") is False:
            return  # a person merged into another (replaced-by)
        person_id = str(resource.get("id"))
        facts = self._orphans.pop(person_id, None) or PersonFacts(person_id)
        for ident in resource.get("identifier") or ():
            if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM and ident.get("value"):
                facts.nhs_number = str(ident["value"]).replace(" ", "")
        try:
            facts.birth_date = date.fromisoformat(str(resource.get("birthDate")))
        except ValueError:
            facts.birth_date = None
        for address in resource.get("address") or ():
            if isinstance(address, dict) and address.get("use") not in ("old",) and address.get("postalCode"):
                facts.borough = borough_of(str(address["postalCode"]), dict(self.places))
                break
        for gp in resource.get("generalPractitioner") or ():
            if not isinstance(gp, dict):
                continue
            ident = gp.get("identifier")
            if isinstance(ident, dict) and ident.get("system") == ODS_ORGANIZATION_SYSTEM and ident.get("value"):
                facts.practice = str(ident["value"])
                break
            ref = gp.get("reference")
            if isinstance(ref, str) and ref.startswith("Organization/"):
                facts.practice = ref.removeprefix("Organization/")
                break
        self.persons[person_id] = facts

    def condition(self, resource: Mapping[str, Any]) -> None:
        """A Condition: which listed sets its SNOMED code is in, if it is current and not refuted."""
        person = _subject(resource)
        if person is None:
            return
        clinical = _any_codes(resource.get("clinicalStatus"))
        if clinical and not clinical & _ACTIVE:
            return
        if _any_codes(resource.get("verificationStatus")) & _NOT_TRUE:
            return
        sets: set[str] = set()
        for code in _codes(resource.get("code"), SNOMED_SYSTEM):
            sets.update(self.definitions.set_of_code.get(code, ()))
        if sets:
            self._facts(person).condition_sets |= sets

    def encounter(self, resource: Mapping[str, Any]) -> None:
        """An Encounter: an emergency stay (IMP with an emergency admission method) or an A&E attendance (EMER)."""
        if resource.get("status") in ("cancelled", "entered-in-error", "planned"):
            return
        person = _subject(resource)
        klass = resource.get("class")
        code = klass.get("code") if isinstance(klass, dict) else None
        if person is None or code not in ("IMP", "EMER"):
            return
        period = _period(resource)
        if period is None:
            return
        if code == "EMER":
            self._facts(person).attendances.append(period)
        elif _admission_methods(resource) & EMERGENCY_ADMISSION_METHODS:
            self._facts(person).stays.append(period)


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


@dataclass(frozen=True, slots=True)
class Computed:
    """One cohort's computation before it is saved."""

    run: CohortRun
    members: list[Member]


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
        collector = await self.collect()
        objectors = await self.view.store.read(_objecting_persons)
        evaluator = Evaluator(as_of)
        computed_at = as_of.isoformat(timespec="seconds").replace("+00:00", "Z")
        previous = {r.group_id: r for r in await self.view.store.read(list_runs)}
        results: list[Computed] = []
        for cohort_id in wanted:
            definition = self.definitions.cohort(cohort_id)
            assert definition is not None
            results.append(
                _one(definition, collector.persons.values(), evaluator, opt_out, objectors, computed_at, previous)
            )
        elapsed = round((time.perf_counter() - started) * 1000)
        results = [Computed(_with_elapsed(r.run, elapsed), r.members) for r in results]
        defined = {c.id for c in self.definitions.cohorts}

        def save(tx: Tx) -> None:
            save_opt_out(tx, opt_out, datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
            for done in results:
                save_run(tx, done.run, done.members)
            for stale in set(previous) - defined:
                drop_run(tx, stale)

        await self.view.store.write(save)
        return [r.run for r in results]


def _with_elapsed(run: CohortRun, elapsed_ms: int) -> CohortRun:
    return CohortRun(
        run.group_id, run.title, run.description, run.definition, run.computed_at, run.version,
        run.member_count, run.removed_type1, run.removed_type2, run.removed_objection, elapsed_ms,
    )  # fmt: skip


def _objecting_persons(tx: Tx) -> int:
    """How many persons the objection register holds (golden persons; an unlinked record counts as one)."""
    ids = objecting_ids(tx)
    canonical = canonical_ids(tx, "Patient", ids)
    return len({canonical.get(i, i) for i in ids})


def _one(
    definition: CohortDefinition,
    persons: Iterable[PersonFacts],
    evaluator: Evaluator,
    opt_out: NationalOptOut,
    objectors: int,
    computed_at: str,
    previous: Mapping[str, CohortRun],
) -> Computed:
    members: list[Member] = []
    type1 = type2 = 0
    for facts in persons:
        if not evaluator.matches(definition.rule, facts):
            continue
        kind = opt_out.kind(facts.nhs_number) if facts.nhs_number else None
        if kind == "1":
            type1 += 1
        elif kind == "2":
            type2 += 1
        else:
            members.append(Member(facts.person_id, facts.nhs_number, facts.borough, facts.practice))
    members.sort(key=lambda m: m.person_id)
    before = previous.get(definition.id)
    run = CohortRun(
        group_id=definition.id,
        title=definition.title,
        description=definition.description,
        definition=definition.as_json(),
        computed_at=computed_at,
        version=(before.version + 1) if before else 1,
        member_count=len(members),
        removed_type1=type1,
        removed_type2=type2,
        removed_objection=objectors,
        elapsed_ms=0,
    )
    return Computed(run, members)
