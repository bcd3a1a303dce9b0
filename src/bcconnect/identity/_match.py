"""``Patient/$match``: candidate persons for a Patient resource a client sends, with a score and a grade.

The same blocking and tiered rules as linking are used, read-only. Grades follow the FHIR match-grade
extension: ``certain`` for a deterministic NHS number match, ``probable`` for a scored match, ``possible`` for
the review band, ``certainly-not`` is never returned. The score (0–1) is the Fellegi–Sunter weight turned into
a probability, centred between the review and match thresholds, at most 0.99; only a deterministic match
scores 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bcconnect.identity import _db
from bcconnect.identity._blocking import block_keys
from bcconnect.identity._decide import LinkState
from bcconnect.identity._linker import default_rules
from bcconnect.identity._normalise import demographics
from bcconnect.identity._plan import plan_link
from bcconnect.identity._rules import Rules
from bcconnect.store import Tx


@dataclass(frozen=True, slots=True)
class MatchCandidate:
    """One person a Patient resource may be: score in 0–1, grade, and the rule that decided."""

    person_id: str
    score: float
    grade: str
    rule: str


def _probability(bits: float, rules: Rules) -> float:
    centre = (rules.match_at + rules.review_at) / 2
    exponent = max(min(-(bits - centre) / 2, 60.0), -60.0)
    # only a deterministic match is certain: a scored one stays below 1
    return min(round(1.0 / (1.0 + float(2.0**exponent)), 4), 0.99)


def match_patient(
    tx: Tx, resource: Mapping[str, Any], *, count: int = 10, only_certain: bool = False, rules: Rules | None = None
) -> list[MatchCandidate]:
    """Persons the resource may belong to, best first (``only_certain``: certain matches only)."""
    rules = rules or default_rules()
    record = demographics({**resource, "id": "$match"})
    candidates = _db.candidates(tx, block_keys(record, rules.blocking), exclude="$match")
    plan = plan_link(record, candidates, rules)
    found = []
    for decided in ([plan.match] if plan.match else []) + list(plan.duplicates) + list(plan.possible):
        d = decided.decision
        deterministic = d.state is LinkState.MATCH and d.rule.startswith("nhs-verified")
        grade = "certain" if deterministic else "probable" if d.state is LinkState.MATCH else "possible"
        score = 1.0 if deterministic else _probability(d.score, rules)
        found.append(MatchCandidate(decided.person_id, score, grade, d.rule))
    found.sort(key=lambda c: (-c.score, c.person_id))
    if only_certain:
        found = [c for c in found if c.grade == "certain"]
    return found[:count]
