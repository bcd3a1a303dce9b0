"""Triage answers over the view: the network worklist, the shared waiting list, its summary, mutual aid.

Everything is read through :class:`~bcconnect.view.View` with the caller's :class:`AccessContext`, so the
information-governance screen (objection, sensitivity labels, restricted patients, the patient a token is
confined to) applies exactly as on the FHIR endpoint: a withheld person never reaches a worklist row.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from bcconnect.triage._config import Network, TriageConfig, load_triage_config
from bcconnect.triage._context import PersonContext, build_context
from bcconnect.triage._model import (
    Histogram,
    ReadModel,
    WorklistRow,
    open_referrals_of,
    pidmas_candidates,
    running_histogram,
    waiting_facts,
    worklist_rows,
)
from bcconnect.triage._pathway import PathwayFacts, pathway_facts, pathway_key
from bcconnect.triage._records import (
    Appointment,
    Pathway,
    Referral,
    appointment_from,
    pathway_from,
    referral_from,
)
from bcconnect.triage._rtt import Clock
from bcconnect.view import AccessContext, View, person_members

#: worklist order: two-week wait first, then urgent, then routine
PRIORITY_RANK = {"asap": 0, "stat": 0, "urgent": 1, "routine": 2}
PRIORITY_LABEL = {"asap": "Two-week wait", "stat": "Two-week wait", "urgent": "Urgent", "routine": "Routine"}
#: long-wait thresholds reported, in weeks
LONG_WAIT_WEEKS = (52, 65, 78, 104)
#: every resource type triage reads (a caller needs search permission on each)
TRIAGE_READS = (
    "ServiceRequest",
    "EpisodeOfCare",
    "Appointment",
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
)


def today() -> date:
    """The reference date when none is given (UTC)."""
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class WorklistItem:
    """One referral awaiting triage, with its person's cross-site context."""

    referral: Referral
    network: str
    days_waiting: int
    duplicates: tuple[Referral, ...]
    route: str | None
    context: PersonContext | None

    @property
    def person(self) -> str:
        """The (golden) patient id of the person referred."""
        return self.referral.patient

    @property
    def priority_label(self) -> str:
        """Two-week wait / Urgent / Routine."""
        return PRIORITY_LABEL.get(self.referral.priority, self.referral.priority)


@dataclass(frozen=True, slots=True)
class PathwayRow:
    """One RTT pathway (all providers that held its PPI), its clock and PIDMAS eligibility at ``as_of``."""

    key: str
    ppi: str | None
    person: str
    trust: str
    tfc: str | None
    network: str | None
    priority: str
    clock: Clock
    days_waited: int
    next_activity: date | None
    fds: date | None
    referral_ids: tuple[str, ...]
    pidmas_eligible: bool = False
    exclusions: tuple[str, ...] = ()
    #: the current provider's EpisodeOfCare as the view served it
    resource: Any = field(default=None, compare=False, repr=False)
    #: that EpisodeOfCare's id
    resource_id: str = ""

    @property
    def weeks_waited(self) -> int:
        """Completed weeks waited."""
        return self.days_waited // 7


@dataclass(frozen=True, slots=True)
class WaitSummary:
    """Waiting-list statistics of one trust and TFC (running pathways only)."""

    trust: str
    tfc: str
    size: int
    median_weeks: float
    p92_weeks: float
    within_18_weeks: float
    over: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancerPerformance:
    """Cancer standards of one trust: 28-day faster diagnosis and 62-day referral to first treatment."""

    trust: str
    fds_told: int
    fds_within_28: int
    treated: int
    treated_within_62: int

    @property
    def fds_rate(self) -> float | None:
        """Share told within 28 days (standard 75%)."""
        return self.fds_within_28 / self.fds_told if self.fds_told else None

    @property
    def rate_62(self) -> float | None:
        """Share treated within 62 days (standard 85%)."""
        return self.treated_within_62 / self.treated if self.treated else None


@dataclass(frozen=True, slots=True)
class Alternative:
    """A provider with a shorter current wait for the same TFC (``paired``: within a configured pairing)."""

    trust: str
    median_weeks: float
    size: int
    paired: bool
    pairing: str | None = None


@dataclass(frozen=True, slots=True)
class MutualAid:
    """A PIDMAS-eligible pathway and where it could move."""

    row: PathwayRow
    current_median_weeks: float
    alternatives: tuple[Alternative, ...]


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (0 for no values).

    >>> percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 92)
    10
    >>> percentile([5.0], 50)
    5.0
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _kth(ordered: Sequence[tuple[int, int]], k: int) -> int:
    """The ``k``-th smallest (0-based) of a sorted histogram of ``(value, count)``."""
    seen = 0
    for value, count in ordered:
        seen += count
        if k < seen:
            return value
    raise IndexError(k)


def summarise_histogram(histogram: Mapping[tuple[str, str], Mapping[date, int]], as_of: date) -> list[WaitSummary]:
    """:func:`summarise` from running pathways counted per (trust, TFC) and clock start (the read model's
    aggregate): the same median, 92nd percentile, 18-week share and long-wait counts, value for value."""
    out = []
    for (trust, tfc), starts in sorted(histogram.items()):
        days: dict[int, int] = defaultdict(int)
        for start, count in starts.items():
            if count:
                days[max(0, (as_of - start).days)] += count
        ordered = sorted((d, c) for d, c in days.items() if c > 0)
        size = sum(c for _, c in ordered)
        if not size:
            continue
        if size % 2:
            median = _kth(ordered, size // 2) / 7
        else:
            median = (_kth(ordered, size // 2 - 1) / 7 + _kth(ordered, size // 2) / 7) / 2
        rank = max(1, math.ceil(92 / 100 * size))
        out.append(
            WaitSummary(
                trust=trust,
                tfc=tfc,
                size=size,
                median_weeks=round(median, 1),
                p92_weeks=round(_kth(ordered, rank - 1) / 7, 1),
                within_18_weeks=round(sum(c for d, c in ordered if d <= 18 * 7) / size, 4),
                over={w: sum(c for d, c in ordered if d > w * 7) for w in LONG_WAIT_WEEKS},
            )
        )
    return out


def summarise(rows: Iterable[PathwayRow]) -> list[WaitSummary]:
    """Per trust and TFC: size, median and 92nd-percentile weeks, share within 18 weeks, long-wait counts."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        if row.clock.running:
            groups[(row.trust, row.tfc or "")].append(row.days_waited)
    out = []
    for (trust, tfc), days in sorted(groups.items()):
        weeks = [d / 7 for d in days]
        out.append(
            WaitSummary(
                trust=trust,
                tfc=tfc,
                size=len(days),
                median_weeks=round(statistics.median(weeks), 1),
                p92_weeks=round(percentile(weeks, 92), 1),
                within_18_weeks=round(sum(1 for d in days if d <= 18 * 7) / len(days), 4),
                over={w: sum(1 for d in days if d > w * 7) for w in LONG_WAIT_WEEKS},
            )
        )
    return out


class Triage:
    """Referral triage and the shared waiting list, read through ``view`` for one caller at a time."""

    def __init__(self, view: View, config: TriageConfig | None = None, *, page_size: int = 1000) -> None:
        self.view = view
        self.config = config or load_triage_config()
        self.page_size = page_size
        #: open referrals and pathway clocks kept in triage's own tables (refreshed before each answer)
        self.model = ReadModel(view, self.config)

    async def _search(self, access: AccessContext, resource_type: str, params: Sequence[tuple[str, str]]) -> list[Any]:
        """Every match of a search (all pages, one snapshot per page), as parsed JSON."""
        query = [*params, ("_count", str(min(self.page_size, self.view.max_count)))]
        found: list[Any] = []
        at: int | None = None
        offset = 0
        after: str | None = None
        while True:
            # each page starts after the previous page's last key (a deep page costs what the first does)
            result = await self.view.search(access, resource_type, query, at=at, offset=offset, after=after)
            page = result.page
            found.extend(orjson.loads(m.body) for m in page.matches if m.body is not None)
            if not page.has_more or not page.matches:
                return found
            at, offset, after = page.t, offset + len(page.matches), page.after

    async def _record(self, access: AccessContext, person: str) -> list[Any]:
        """The person's cross-trust record (``Patient/<id>/$everything``, all pages)."""
        found: list[Any] = []
        at: int | None = None
        offset = 0
        after: str | None = None
        while True:
            page = await self.view.everything(
                access, person, [("_count", str(self.view.max_count))], at=at, offset=offset, after=after
            )
            found.extend(orjson.loads(m.body) for m in page.matches if m.body is not None)
            if not page.has_more or not page.matches:
                return found
            at, offset, after = page.t, offset + len(page.matches), page.after

    async def _stale_trusts(self, access: AccessContext) -> frozenset[str]:
        return frozenset(f.ods_code for f in await self.view.freshness(access) if f.stale and f.ods_code)

    async def context(
        self, access: AccessContext, person: str, *, network: Network | None = None, as_of: date | None = None
    ) -> PersonContext:
        """The cross-site context of one person (all trusts), for a referral to ``network``."""
        resources = await self._record(access, person)
        return build_context(
            person,
            resources,
            network=network,
            config=self.config,
            as_of=as_of or today(),
            stale_trusts=await self._stale_trusts(access),
        )

    async def timeline(self, access: AccessContext, person: str) -> list[Any]:
        """The person's whole cross-trust record as FHIR JSON (the pages order it by date)."""
        return await self._record(access, person)

    async def referrals(self, access: AccessContext, network: Network | None = None) -> list[Referral]:
        """Every referral (ServiceRequest) in ``network`` (all networks when None), readable by the caller."""
        params: list[tuple[str, str]] = []
        if network is not None and network.tfc:
            # by treatment function; a network without one (pharmacy) is matched on its reasons below
            system = self.config.systems.treatment_function
            params.append(("performer-type", ",".join(f"{system}|{t}" for t in network.tfc)))
        found = []
        for resource in await self._search(access, "ServiceRequest", params):
            referral = referral_from(resource, self.config.systems)
            if referral is None:
                continue
            if network is not None and self.config.network_of(referral.tfc, referral.reasons) != network:
                continue
            found.append(referral)
        return found

    async def worklist(
        self,
        access: AccessContext,
        network: str,
        *,
        trust: str | None = None,
        priority: str | None = None,
        as_of: date | None = None,
        with_context: bool = True,
    ) -> list[WorklistItem]:
        """Referrals awaiting triage in ``network`` across every trust: two-week wait, urgent, routine, each by
        days waiting (longest first); each with open referrals of the same person in the network at other
        trusts (likely duplicates) and, if ``with_context``, the person's cross-site context. Every page of
        :meth:`worklist_page`, to the end."""
        items: list[WorklistItem] = []
        after: WorklistCursor | None = None
        while True:
            page, after = await self.worklist_page(
                access, network, trust=trust, priority=priority, as_of=as_of, with_context=with_context, after=after,
                limit=500,
            )  # fmt: skip
            items += page
            if after is None:
                return items

    async def worklist_page(
        self,
        access: AccessContext,
        network: str,
        *,
        trust: str | None = None,
        priority: str | None = None,
        as_of: date | None = None,
        with_context: bool = True,
        after: WorklistCursor | None = None,
        limit: int = 50,
    ) -> tuple[list[WorklistItem], WorklistCursor | None]:
        """One page of the worklist (see :meth:`worklist`) and the position of the next (None: the last page).

        The read model orders the referrals by keyset (a deep page costs what the first does); each page's
        referrals are then read through the view for the caller, so only what their screen lets them see is
        shown, exactly as served (a referral the model holds but the view withholds is skipped, never shown).
        Context and duplicates are read for the page's persons only.
        """
        net = self.config.network(network)
        as_of = as_of or today()
        await self.model.refresh()
        store = self.view.store
        shown: list[Referral] = []
        cursor = after
        exhausted = False
        while len(shown) < limit and not exhausted:
            want = limit - len(shown)

            def rows(tx: Any, cursor: WorklistCursor | None = cursor, want: int = want) -> list[WorklistRow]:
                return worklist_rows(
                    tx, net.name, after=cursor, limit=want, trust=trust.upper() if trust else None, priority=priority
                )

            batch = await store.read(rows)
            exhausted = len(batch) < want
            served = {r.id: r for r in await self._referrals_by_id(access, [b.res_id for b in batch])}
            for row in batch:
                cursor = row.after
                found = served.get(row.res_id)
                # the view's copy decides: screened for this caller, and current even if the model lags
                if found is None or not found.awaiting_triage:
                    continue
                if self.config.network_of(found.tfc, found.reasons) != net:
                    continue
                shown.append(found)
        items = await self._items(access, net, shown, as_of, with_context)
        return items, (None if exhausted else cursor)

    async def add_context(
        self, access: AccessContext, items: Sequence[WorklistItem], *, as_of: date | None = None
    ) -> list[WorklistItem]:
        """``items`` (from a worklist read without context) with their persons' cross-site context, read for
        these persons only: a front end that shows one slice of a long worklist reads context for that slice."""
        as_of = as_of or today()
        contexts: dict[str, PersonContext] = {}
        if items:
            stale = await self._stale_trusts(access)
            by_network = {i.person: self.config.network(i.network) for i in items}
            records = await self.view.records(access, list(by_network))
            for person, stored in records.items():
                resources = [orjson.loads(m.body) for m in stored if m.body is not None]
                contexts[person] = build_context(
                    person, resources, network=by_network[person], config=self.config, as_of=as_of, stale_trusts=stale
                )
        return [replace(i, context=contexts.get(i.person)) for i in items]

    async def _referrals_by_id(self, access: AccessContext, ids: Sequence[str]) -> list[Referral]:
        """These referrals as the view serves them to ``access`` (withheld ones are simply absent)."""
        found: list[Referral] = []
        for start in range(0, len(ids), _ID_BATCH):
            chunk = ids[start : start + _ID_BATCH]
            for resource in await self._search(access, "ServiceRequest", [("_id", ",".join(chunk))]):
                referral = referral_from(resource, self.config.systems)
                if referral is not None:
                    found.append(referral)
        return found

    async def _items(
        self, access: AccessContext, net: Network, waiting: list[Referral], as_of: date, with_context: bool
    ) -> list[WorklistItem]:
        """Worklist items for these referrals: likely duplicates and (``with_context``) cross-site context."""
        persons = list(dict.fromkeys(r.patient for r in waiting))
        members = await person_members(self.view, persons)
        every_id = sorted({m for _, ms in members.values() for m in ms} | set(persons))
        candidates = await self.view.store.read(lambda tx: open_referrals_of(tx, every_id, net.name))
        open_by_person: dict[str, list[Referral]] = defaultdict(list)
        for other in await self._referrals_by_id(access, candidates):
            if other.open and self.config.network_of(other.tfc, other.reasons) == net:
                open_by_person[other.patient].append(other)
        contexts: dict[str, PersonContext] = {}
        if with_context and waiting:
            stale = await self._stale_trusts(access)
            # the page's persons' records in one read (not one $everything per person)
            records = await self.view.records(access, persons)
            for person, stored in records.items():
                resources = [orjson.loads(m.body) for m in stored if m.body is not None]
                contexts[person] = build_context(
                    person, resources, network=net, config=self.config, as_of=as_of, stale_trusts=stale
                )
        return [
            WorklistItem(
                referral=r,
                network=net.name,
                days_waiting=(as_of - r.received).days if r.received else 0,
                duplicates=tuple(o for o in open_by_person[r.patient] if o.id != r.id and o.trust != r.trust),
                route=self._route(net, r),
                context=contexts.get(r.patient),
            )
            for r in waiting
        ]

    def _route(self, network: Network, referral: Referral) -> str | None:
        for route in self.config.routes:
            if (
                route.network == network.name
                and referral.priority in route.priority
                and (not route.reasons or referral.reasons & route.reasons)
                and referral.trust != route.to
            ):
                return f"{route.name}: refer on to {route.to}"
        return None

    async def pathways(self, access: AccessContext, *, as_of: date | None = None) -> list[PathwayRow]:
        """Every RTT pathway across the trusts (grouped by PPI), its clock by the RTT rules at ``as_of``."""
        as_of = as_of or today()
        systems = self.config.systems
        episodes = [p for p in (pathway_from(e, systems) for e in await self._search(access, "EpisodeOfCare", ())) if p]
        referrals = {
            r.id: r for r in (referral_from(s, systems) for s in await self._search(access, "ServiceRequest", ())) if r
        }
        appointments: dict[str, list[Appointment]] = defaultdict(list)
        for resource in await self._search(access, "Appointment", ()):
            appointment = appointment_from(resource)
            for ref_id in appointment.referral_ids:
                appointments[ref_id].append(appointment)
        groups: dict[str, list[Pathway]] = defaultdict(list)
        for episode in episodes:
            groups[pathway_key(episode)].append(episode)
        rows = []
        for key, group in groups.items():
            rows.append(self._row(key, group, referrals, appointments, as_of))
        return rows

    def _row(
        self,
        key: str,
        group: list[Pathway],
        referrals: dict[str, Referral],
        appointments: dict[str, list[Appointment]],
        as_of: date,
    ) -> PathwayRow:
        return row_of(pathway_facts(key, group, referrals, appointments, self.config), as_of)

    async def waiting_list(
        self,
        access: AccessContext,
        *,
        tfc: str | None = None,
        trust: str | None = None,
        min_weeks: int | None = None,
        pidmas_eligible: bool = False,
        as_of: date | None = None,
    ) -> list[PathwayRow]:
        """Open pathways (clock running), longest wait first, filtered; PIDMAS eligibility worked out for each.

        Selected from the read model, screened for the caller; each row's current EpisodeOfCare is then read
        through the view (a pathway whose episode the view does not serve the caller is left out).
        """
        as_of = as_of or today()
        await self.model.refresh()
        hidden = await self.model.withheld(access)
        started_before = as_of - timedelta(days=min_weeks * 7) if min_weeks is not None else None
        trust = trust.upper() if trust else None

        def read(tx: Any) -> list[PathwayFacts]:
            return waiting_facts(tx, self.model, hidden, tfc=tfc, trust=trust, started_before=started_before)

        rows = [row_of(f, as_of) for f in await self.view.store.read(read) if f.clock.running]
        if tfc:
            rows = [r for r in rows if r.tfc == tfc]
        if trust:
            rows = [r for r in rows if r.trust == trust]
        if min_weeks is not None:
            rows = [r for r in rows if r.days_waited > min_weeks * 7]
        served = {
            str(e.get("id")): e
            for e in await self._by_id(access, "EpisodeOfCare", [r.resource_id for r in rows if r.resource_id])
        }
        persons = await person_members(self.view, [r.person for r in rows])
        rows = [
            replace(r, person=persons[r.person][0] if r.person in persons else r.person, resource=served[r.resource_id])
            for r in rows
            if r.resource_id in served
        ]
        rows = await self._with_pidmas(access, rows, as_of)
        if pidmas_eligible:
            rows = [r for r in rows if r.pidmas_eligible]
        rows.sort(key=lambda r: (-r.days_waited, r.key))
        return rows

    async def waiting_list_from_view(self, access: AccessContext, *, as_of: date | None = None) -> list[PathwayRow]:
        """Every open pathway computed from every resource read through the view (the read model's oracle)."""
        as_of = as_of or today()
        rows = [r for r in await self.pathways(access, as_of=as_of) if r.clock.running]
        rows = await self._with_pidmas(access, rows, as_of)
        rows.sort(key=lambda r: (-r.days_waited, r.key))
        return rows

    async def _by_id(self, access: AccessContext, resource_type: str, ids: Sequence[str]) -> list[Any]:
        """These resources as the view serves them to ``access`` (withheld ones are absent)."""
        found: list[Any] = []
        for start in range(0, len(ids), _ID_BATCH):
            found += await self._search(access, resource_type, [("_id", ",".join(ids[start : start + _ID_BATCH]))])
        return found

    async def _with_pidmas(self, access: AccessContext, rows: list[PathwayRow], as_of: date) -> list[PathwayRow]:
        """PIDMAS cohort 1: routine, > 40 weeks, no appointment/admission within 8 weeks, adult, not transferred."""
        cfg = self.config
        horizon = as_of + timedelta(weeks=cfg.pidmas_horizon_weeks)
        checked = []
        for row in rows:
            reasons = []
            if row.days_waited <= cfg.pidmas_min_weeks * 7:
                reasons.append(f"waited {row.weeks_waited} weeks (not over {cfg.pidmas_min_weeks})")
            if row.priority != "routine":
                reasons.append(f"{row.priority} referral (routine only)")
            if row.next_activity is not None and row.next_activity <= horizon:
                reasons.append(f"booked for {row.next_activity.isoformat()}")
            if row.clock.transferred:
                reasons.append("inter-provider transfer")
            checked.append((row, reasons))
        # only the rows nothing else excludes need an age: their Patients are read together, not one by one
        ages = await self._ages(access, [row.person for row, reasons in checked if not reasons], as_of)
        out = []
        for row, reasons in checked:
            if not reasons:
                age = ages.get(row.person)
                if age is None or age < cfg.pidmas_min_age:
                    reasons.append("under 18" if age is not None else "age not known")
            out.append(_replace_row(row, pidmas_eligible=not reasons, exclusions=tuple(reasons)))
        return out

    async def _ages(self, access: AccessContext, persons: Sequence[str], as_of: date) -> dict[str, int | None]:
        """Each person's age at ``as_of`` from their (golden) Patient, read a page of ids at a time."""
        wanted = list(dict.fromkeys(persons))
        ages: dict[str, int | None] = {}
        for start in range(0, len(wanted), _AGE_BATCH):
            chunk = wanted[start : start + _AGE_BATCH]
            params = [("_id", ",".join(chunk))]
            for patient in await self._search(access, "Patient", params):
                ages[str(patient.get("id"))] = _age_at(patient.get("birthDate"), as_of)
        return ages

    async def summary(self, access: AccessContext, *, as_of: date | None = None) -> list[WaitSummary]:
        """Waiting-list statistics per trust and TFC, from the read model (counted in SQL, screened for the
        caller: pathways with a part they may not see are counted as they may see them)."""
        as_of = as_of or today()
        await self.model.refresh()
        hidden = await self.model.withheld(access)
        histogram = await self.view.store.read(lambda tx: running_histogram(tx, self.model, hidden))
        return summarise_histogram(histogram, as_of)

    async def cancer(self, access: AccessContext, *, as_of: date | None = None) -> list[CancerPerformance]:
        """28-day faster diagnosis and 62-day performance per trust (two-week-wait pathways)."""
        rows = [r for r in await self.pathways(access, as_of=as_of) if r.priority in ("asap", "stat")]
        return cancer_performance(rows)

    async def mutual_aid(self, access: AccessContext, *, as_of: date | None = None) -> list[MutualAid]:
        """PIDMAS-eligible pathways, each with the providers whose current wait for its TFC is shorter.

        The cohort is selected from the read model in SQL (routine, over the PIDMAS wait, not transferred,
        nothing booked within the horizon), screened for the caller; ages are read through the view.
        """
        as_of = as_of or today()
        await self.model.refresh()
        hidden = await self.model.withheld(access)
        cfg = self.config
        horizon = as_of + timedelta(weeks=cfg.pidmas_horizon_weeks)
        waited_before = as_of - timedelta(days=cfg.pidmas_min_weeks * 7)

        def read(tx: Any) -> tuple[Histogram, list[PathwayFacts]]:
            histogram = running_histogram(tx, self.model, hidden)
            found = pidmas_candidates(tx, self.model, hidden, waited_before=waited_before, as_of=as_of, horizon=horizon)
            return histogram, found

        histogram, candidates = await self.view.store.read(read)
        medians = {(s.trust, s.tfc): s for s in summarise_histogram(histogram, as_of)}
        rows = [row_of(f, as_of) for f in candidates if f.clock.running]
        persons = await person_members(self.view, [r.person for r in rows])
        rows = [replace(r, person=persons[r.person][0]) if r.person in persons else r for r in rows]
        eligible = await self._with_pidmas(access, rows, as_of)
        return self._offers(eligible, medians)

    async def mutual_aid_from_view(self, access: AccessContext, *, as_of: date | None = None) -> list[MutualAid]:
        """:meth:`mutual_aid` computed from every resource read through the view (the read model's oracle)."""
        as_of = as_of or today()
        rows = await self.pathways(access, as_of=as_of)
        medians = {(s.trust, s.tfc): s for s in summarise(rows)}
        eligible = await self._with_pidmas(access, [r for r in rows if r.clock.running], as_of)
        return self._offers(eligible, medians)

    async def summary_from_view(self, access: AccessContext, *, as_of: date | None = None) -> list[WaitSummary]:
        """:meth:`summary` computed from every resource read through the view (the read model's oracle)."""
        return summarise(await self.pathways(access, as_of=as_of))

    def _offers(self, eligible: list[PathwayRow], medians: dict[tuple[str, str], WaitSummary]) -> list[MutualAid]:
        out = []
        for row in sorted((r for r in eligible if r.pidmas_eligible), key=lambda r: (-r.days_waited, r.key)):
            mine = medians.get((row.trust, row.tfc or ""))
            if mine is None:
                continue
            alternatives = []
            for (trust, tfc), s in medians.items():
                if tfc != (row.tfc or "") or trust == row.trust or s.median_weeks >= mine.median_weeks:
                    continue
                pairing = next(
                    (
                        p
                        for p in self.config.pairings
                        if p.enabled and tfc in p.tfc and row.trust in p.trusts and trust in p.trusts
                    ),
                    None,
                )
                alternatives.append(
                    Alternative(trust, s.median_weeks, s.size, pairing is not None, pairing.name if pairing else None)
                )
            alternatives.sort(key=lambda a: (not a.paired, a.median_weeks, a.trust))
            out.append(MutualAid(row, mine.median_weeks, tuple(alternatives)))
        return out


def row_of(facts: PathwayFacts, as_of: date) -> PathwayRow:
    """The waiting-list row of a pathway at ``as_of``."""
    current = facts.current
    return PathwayRow(
        key=facts.key,
        ppi=current.ppi,
        person=current.patient,
        trust=current.trust,
        tfc=facts.tfc,
        network=facts.network,
        priority=facts.priority,
        clock=facts.clock,
        days_waited=facts.clock.days_waited(as_of),
        next_activity=facts.next_activity(as_of),
        fds=facts.fds,
        referral_ids=facts.referral_ids,
        resource=current.resource or None,
        resource_id=current.id,
    )


def cancer_performance(rows: Iterable[PathwayRow]) -> list[CancerPerformance]:
    """Per trust: told within 28 days of referral receipt; first treatment (30) within 62 days."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        counts = per[row.trust]
        start = row.clock.start
        if row.fds is not None and start is not None:
            counts[0] += 1
            counts[1] += (row.fds - start).days <= 28
        if row.clock.stop_code == "30":
            counts[2] += 1
            counts[3] += row.days_waited <= 62
    return [CancerPerformance(t, *c) for t, c in sorted(per.items())]


#: referrals read per ``_id`` search (a worklist page, its duplicates)
_ID_BATCH = 200
#: where the next worklist page starts (rank, received date, referral id), from the last page's last row
WorklistCursor = tuple[int, str, str]

#: Patients read per search when working out ages
_AGE_BATCH = 100


def _age_at(born: object, as_of: date) -> int | None:
    """Whole years from a FHIR birthDate to ``as_of`` (None when absent or partial)."""
    day = date.fromisoformat(born[:10]) if isinstance(born, str) and len(born) >= 10 else None
    if day is None:
        return None
    return as_of.year - day.year - ((as_of.month, as_of.day) < (day.month, day.day))


def _replace_row(row: PathwayRow, **changes: Any) -> PathwayRow:
    return replace(row, **changes)
