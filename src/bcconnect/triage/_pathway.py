"""One RTT pathway's facts from its parts: the providers' EpisodeOfCare records that share a PPI, the
referrals they name and those referrals' appointments — the clock by the RTT rules and what a reference date
is needed for (the booked appointment dates). Used the same way over the view's resources and over the read
model's rows, so both answers come from one piece of tested code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from bcconnect.triage._config import TriageConfig
from bcconnect.triage._records import Appointment, Pathway, Referral
from bcconnect.triage._rtt import Clock, ClockEvent, merge_events, run_clock


@dataclass(frozen=True, slots=True)
class PathwayFacts:
    """What a pathway is regardless of the reference date: its clock, current provider part and referrals."""

    key: str
    current: Pathway
    priority: str
    clock: Clock
    tfc: str | None
    network: str | None
    fds: date | None
    referral_ids: tuple[str, ...]
    #: the start dates of every booked (not yet attended or cancelled) appointment on the pathway's referrals
    booked: tuple[date, ...]

    def next_activity(self, as_of: date) -> date | None:
        """The first booked appointment on or after ``as_of`` (None: nothing booked)."""
        return min((d for d in self.booked if d >= as_of), default=None)


def pathway_key(pathway: Pathway) -> str:
    """Providers' parts of one pathway share their Patient Pathway Identifier; one without stands alone."""
    return f"ppi:{pathway.ppi}" if pathway.ppi else f"id:{pathway.id}"


def pathway_facts(
    key: str,
    group: Sequence[Pathway],
    referrals: Mapping[str, Referral],
    appointments: Mapping[str, Sequence[Appointment]],
    config: TriageConfig,
) -> PathwayFacts:
    """The facts of the pathway made of ``group`` (``referrals`` by id; ``appointments`` by referral id)."""
    current = next((p for p in group if p.status not in ("finished", "cancelled")), None)
    if current is None:
        current = max(group, key=lambda p: (p.end or date.min, p.start or date.min))
    linked = [referrals[i] for p in group for i in p.referral_ids if i in referrals]
    referral = next((r for r in linked if r.id in current.referral_ids), linked[0] if linked else None)
    priority = referral.priority if referral else "routine"
    dna_events: list[ClockEvent] = []
    booked: list[date] = []
    for r in linked:
        dated = sorted((a for a in appointments.get(r.id, ()) if a.start), key=lambda a: a.start or datetime.min)
        first = next((a for a in dated if a.status != "cancelled"), None)
        if first is not None and first.status == "noshow" and first.start is not None:
            dna_events.append(ClockEvent(first.start.date(), "", r.trust, first_appointment_dna=True))
        booked += [a.start.date() for a in dated if a.status == "booked" and a.start is not None]
    clock = run_clock(merge_events([*(p.events for p in group), dna_events]), priority=priority)
    tfc = current.tfc or (referral.tfc if referral else None)
    network = config.network_of(tfc, referral.reasons if referral else frozenset())
    return PathwayFacts(
        key=key,
        current=current,
        priority=priority,
        clock=clock,
        tfc=tfc,
        network=network.name if network else None,
        fds=next((p.fds for p in group if p.fds), None),
        referral_ids=tuple(r.id for r in linked),
        booked=tuple(sorted(booked)),
    )
