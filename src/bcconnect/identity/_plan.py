"""From pair decisions to a person-level plan for one incoming record (the same for every index backend).

Each candidate record belongs to a person; the plan looks at persons, not records: a person that holds a
*verified* NHS number different from the incoming verified one is vetoed outright; among the rest, the person
with the strongest MATCH gets the record; other persons that also MATCH are flagged POSSIBLE_DUPLICATE (two
persons that may be one); POSSIBLE_MATCH persons go to review. With no MATCH the record founds a new person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bcconnect.identity._decide import LinkState, PairDecision, decide_pair
from bcconnect.identity._normalise import Demographics
from bcconnect.identity._rules import Rules

_ORDER = {LinkState.MATCH: 2, LinkState.POSSIBLE_MATCH: 1}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A known record that shares a blocking key with the incoming one, and the person it belongs to."""

    record: Demographics
    person_id: str


@dataclass(frozen=True, slots=True)
class PersonDecision:
    """The best pair decision between the incoming record and any record of one person."""

    person_id: str
    state: LinkState
    decision: PairDecision
    via_patient_id: str


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """What to do with one record: link it to ``match`` (None: found a new person), flag the others."""

    match: PersonDecision | None
    possible: tuple[PersonDecision, ...]
    duplicates: tuple[PersonDecision, ...]


def plan_link(record: Demographics, candidates: Iterable[Candidate], rules: Rules) -> LinkPlan:
    """Decide, person by person, where ``record`` belongs."""
    best: dict[str, PersonDecision] = {}
    vetoed: set[str] = set()
    for cand in candidates:
        if cand.record.patient_id == record.patient_id:
            continue
        decision = decide_pair(record, cand.record, rules)
        if decision.rule == "nhs-verified-differ":
            vetoed.add(cand.person_id)
            continue
        if decision.state not in _ORDER:
            continue
        current = best.get(cand.person_id)
        key = (_ORDER[decision.state], *decision.strength)
        if current is None or key > (_ORDER[current.state], *current.decision.strength):
            best[cand.person_id] = PersonDecision(cand.person_id, decision.state, decision, cand.record.patient_id)
    ranked = sorted(
        (p for pid, p in best.items() if pid not in vetoed),
        key=lambda p: (_ORDER[p.state], *p.decision.strength, p.person_id),
        reverse=True,
    )
    matches = [p for p in ranked if p.state is LinkState.MATCH]
    possible = tuple(p for p in ranked if p.state is LinkState.POSSIBLE_MATCH)
    if not matches:
        return LinkPlan(None, possible, ())
    return LinkPlan(matches[0], possible, tuple(matches[1:]))
