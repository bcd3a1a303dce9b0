"""The tiered decision for one pair of source records: deterministic NHS number rules, then Fellegi–Sunter.

Tiers, first that applies wins (see ``rules.toml``):

1. both NHS numbers verified and different → NO_MATCH, whatever the demographics say;
2. same NHS number: verified on both sides with the same date of birth (or day and month swapped, unless the
   rules call a swap a conflict) and no name conflict → MATCH; a date of birth that differs or is missing, or
   both names different → POSSIBLE_MATCH; verified on neither side → POSSIBLE_MATCH; verified on one side →
   scored;
3. otherwise the Fellegi–Sunter weight of the pair, in bands: MATCH / POSSIBLE_MATCH (review) / NO_MATCH.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bcconnect.identity._compare import Vector, compare
from bcconnect.identity._fs import Contribution
from bcconnect.identity._normalise import Demographics
from bcconnect.identity._rules import Rules

_DIFFERENT_GIVEN = 4
_DIFFERENT_FAMILY = 3
_SAME_DOB = 0
_SWAPPED_DOB = 1


class LinkState(enum.Enum):
    """The state of a link between a source record and a person."""

    MATCH = "MATCH"
    POSSIBLE_MATCH = "POSSIBLE_MATCH"
    NO_MATCH = "NO_MATCH"
    #: the record matches this person too, while it is linked to another: the two persons may be one
    POSSIBLE_DUPLICATE = "POSSIBLE_DUPLICATE"
    #: the record was merged into another record (HL7 A40, ``Patient.link`` replaced-by); it follows that one
    REDIRECT = "REDIRECT"


class LinkSource(enum.Enum):
    """Who made a link: the engine's rules (AUTO) or a data steward (MANUAL, never overwritten by AUTO)."""

    AUTO = "AUTO"
    MANUAL = "MANUAL"


@dataclass(frozen=True, slots=True)
class PairDecision:
    """The outcome for one pair: the state, the rule that decided, the score (bits) and the field levels."""

    state: LinkState
    rule: str
    score: float
    vector: Vector

    @property
    def strength(self) -> tuple[int, float]:
        """Orders decisions: deterministic matches above scored ones, then by score."""
        deterministic = self.state is LinkState.MATCH and self.rule.startswith("nhs-")
        return (1 if deterministic else 0, self.score)


def decide_pair(a: Demographics, b: Demographics, rules: Rules) -> PairDecision:
    """Decide whether two source records are one person, under ``rules``."""
    vector = compare(a, b)
    score = rules.model.score(vector)
    if a.nhs_verified and b.nhs_verified and a.nhs_number != b.nhs_number:
        return PairDecision(LinkState.NO_MATCH, "nhs-verified-differ", score, vector)
    if a.nhs_number is not None and a.nhs_number == b.nhs_number:
        names_conflict = vector[1] == _DIFFERENT_GIVEN and vector[2] == _DIFFERENT_FAMILY
        swapped_ok = vector[3] == _SWAPPED_DOB and not rules.dob_swap_is_conflict
        if vector[3] != _SAME_DOB and not swapped_ok:
            return PairDecision(LinkState.POSSIBLE_MATCH, "nhs-same-dob-conflict", score, vector)
        if names_conflict:
            return PairDecision(LinkState.POSSIBLE_MATCH, "nhs-same-names-conflict", score, vector)
        if a.nhs_verified and b.nhs_verified:
            rule = "nhs-verified-dob-swapped" if swapped_ok else "nhs-verified-dob"
            return PairDecision(LinkState.MATCH, rule, score, vector)
        if not a.nhs_verified and not b.nhs_verified:
            state = rules.same_nhs_both_unverified
            if state != "SCORE":
                return PairDecision(LinkState(state), "nhs-same-unverified", score, vector)
            return _banded(score, vector, rules, prefix="nhs-unverified-")
        state = rules.same_nhs_one_verified
        if state != "SCORE":
            return PairDecision(LinkState(state), "nhs-same-one-verified", score, vector)
        return _banded(score, vector, rules, prefix="nhs-one-verified-")
    return _banded(score, vector, rules, prefix="fs-")


def _banded(score: float, vector: Vector, rules: Rules, *, prefix: str) -> PairDecision:
    if score >= rules.match_at:
        return PairDecision(LinkState.MATCH, prefix + "match", score, vector)
    if score >= rules.review_at:
        return PairDecision(LinkState.POSSIBLE_MATCH, prefix + "review", score, vector)
    return PairDecision(LinkState.NO_MATCH, prefix + "no-match", score, vector)


def explain_pair(a: Demographics, b: Demographics, rules: Rules) -> tuple[PairDecision, tuple[Contribution, ...]]:
    """The decision for a pair and each field's level and weight (for ``mpi explain`` and review)."""
    decision = decide_pair(a, b, rules)
    return decision, rules.model.explain(decision.vector)
