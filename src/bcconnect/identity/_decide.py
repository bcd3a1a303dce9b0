"""The tiered decision for one pair of source records: deterministic rules, guards, then Fellegi–Sunter.

Tiers, first that applies wins (see ``rules.toml``):

1. both NHS numbers verified and different → NO_MATCH, whatever the demographics say;
2. another first name and another sex → never an automatic MATCH (POSSIBLE_MATCH with a shared NHS number
   and a score in the review band, else NO_MATCH): a twin of the other sex or a relative, not a keying error;
   the twin guard: same date of birth, family name and address (postcode or phone), a different given name
   (not a short form, spelling, typo or middle name of it) → never an automatic MATCH: POSSIBLE_MATCH when the
   NHS numbers agree (a twin's number typed on the other twin's record looks exactly like this), else NO_MATCH
   — unless both records carry the same NHS number verified (each traced to it) and the sexes do not differ:
   one person under two of their given names, decided by tier 3; a given name that only sounds alike or is
   close (twins are often named so: Hassan and Hussein) and no NHS number in common → at most POSSIBLE_MATCH;
   the other's middle name, or one keystroke from the other's name, is not a twin's name and is scored;
3. same NHS number, verified on both sides, a date of birth that agrees (exactly, day and month swapped, or one
   year digit wrong) and names that do not both disagree (read either way round) → MATCH; a date of birth
   that does not agree, or both names different → POSSIBLE_MATCH;
4. the generation guard: birth years ten or more apart (not one mistyped digit) and no NHS number verified on
   both sides → NO_MATCH (a parent and child with one name at one address score high on everything else, and
   a parent's number is the one most often typed on a child's record);
5. otherwise the Fellegi–Sunter weight of the pair (an NHS number verified on one side or neither counts as
   evidence with its weight), in bands: MATCH / POSSIBLE_MATCH (review) / NO_MATCH.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bcconnect.identity._compare import (
    DOB_DIFFERENT,
    DOB_EXACT,
    DOB_SWAPPED,
    DOB_YEAR_TYPO,
    FAMILY_CLOSE,
    FAMILY_DIFFERENT,
    GIVEN_CLOSE,
    GIVEN_DIFFERENT,
    GIVEN_PHONETIC,
    POSTCODE_DIFFERENT,
    SEX_DIFFERENT,
    Vector,
    compare,
    keying_slip,
)
from bcconnect.identity._fs import Contribution
from bcconnect.identity._normalise import Demographics
from bcconnect.identity._rules import Rules

#: rules whose NO_MATCH is a hard conflict: two records so decided are never put into one person
HARD_CONFLICTS = frozenset({"nhs-verified-differ", "twin-guard", "generation-guard", "given-and-sex-differ"})
#: the prefix of decisions on twin-like pairs (one birthday, surname and address) that share an NHS number
#: verified on at most one side and have similar given names: a match any other match outranks
WEAK_PREFIX = "nhs-household-"
#: pair rules that forbid joining two persons automatically (a steward may still join them)
JOIN_BLOCKERS = HARD_CONFLICTS | {"twin-guard-review", "twin-guard-similar-name", "given-and-sex-differ-review"}
_GENERATION_YEARS = 10


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
    def weak(self) -> bool:
        """A match on a twin-like pair through an NHS number not verified on both sides (see the rules)."""
        return self.rule.startswith(WEAK_PREFIX)

    @property
    def strength(self) -> tuple[int, float]:
        """Orders decisions: deterministic matches above scored ones, weak matches last, then by score."""
        if self.weak:
            return (-1, self.score)
        deterministic = self.state is LinkState.MATCH and self.rule.startswith("nhs-")
        return (1 if deterministic else 0, self.score)


def decide_pair(a: Demographics, b: Demographics, rules: Rules) -> PairDecision:
    """Decide whether two source records are one person, under ``rules``."""
    vector = compare(a, b)
    score = rules.model.score(vector)
    if a.nhs_verified and b.nhs_verified and a.nhs_number != b.nhs_number:
        return PairDecision(LinkState.NO_MATCH, "nhs-verified-differ", score, vector)
    same_nhs = a.nhs_number is not None and a.nhs_number == b.nhs_number
    given, family, dob = vector[1], vector[2], vector[3]
    traced = same_nhs and a.nhs_verified and b.nhs_verified
    if given == GIVEN_DIFFERENT and vector[4] == SEX_DIFFERENT:
        # another first name and another sex: a different person (twins of both sexes, a relative), whatever the
        # rest agrees on, even a shared number (a relative's typed on the record); one person who changed both
        # is given a new NHS number in England. With a shared number and a score in the review band a person
        # may look (a twin's number typed on the other's record); otherwise never linked
        if same_nhs and score >= rules.review_at:
            return PairDecision(LinkState.POSSIBLE_MATCH, "given-and-sex-differ-review", score, vector)
        return PairDecision(LinkState.NO_MATCH, "given-and-sex-differ", score, vector)
    if _household_birthday(vector):
        if given == GIVEN_DIFFERENT and not (traced and vector[4] != SEX_DIFFERENT):
            if same_nhs:
                return PairDecision(LinkState.POSSIBLE_MATCH, "twin-guard-review", score, vector)
            return PairDecision(LinkState.NO_MATCH, "twin-guard", score, vector)
        # neither one record's first name being the other's middle name nor a keying slip is how parents name
        # twins: both are how one person is recorded
        similar = given in (GIVEN_PHONETIC, GIVEN_CLOSE) and not keying_slip(a.given, b.given)
        if similar and not same_nhs:
            # twins are often given names that sound alike (Hassan and Hussein), or each other's as a middle name
            state = LinkState.POSSIBLE_MATCH if score >= rules.review_at else LinkState.NO_MATCH
            return PairDecision(state, "twin-guard-similar-name", score, vector)
        if similar and not (a.nhs_verified and b.nhs_verified):
            # most likely a typo in the name, but a twin's number typed on the other twin's record looks the same:
            # a weak match, which any other match outranks and which never joins two persons
            return _banded(score, vector, rules, prefix=WEAK_PREFIX)
    if traced:
        swapped_ok = dob == DOB_SWAPPED and not rules.dob_swap_is_conflict
        if dob not in (DOB_EXACT, DOB_YEAR_TYPO) and not swapped_ok:
            return PairDecision(LinkState.POSSIBLE_MATCH, "nhs-same-dob-conflict", score, vector)
        if given == GIVEN_DIFFERENT and family == FAMILY_DIFFERENT:
            return PairDecision(LinkState.POSSIBLE_MATCH, "nhs-same-names-conflict", score, vector)
        if given == GIVEN_DIFFERENT:
            # both records were traced to this number: one person known by two of their given names
            return PairDecision(LinkState.MATCH, "nhs-verified-given-differs", score, vector)
        rule = {DOB_SWAPPED: "nhs-verified-dob-swapped", DOB_YEAR_TYPO: "nhs-verified-dob-year-typo"}
        return PairDecision(LinkState.MATCH, rule.get(dob, "nhs-verified-dob"), score, vector)
    apart = abs(a.birth_date.year - b.birth_date.year) if a.birth_date and b.birth_date else 0
    if dob == DOB_DIFFERENT and apart >= _GENERATION_YEARS:
        return PairDecision(LinkState.NO_MATCH, "generation-guard", score, vector)
    if same_nhs:
        one = a.nhs_verified or b.nhs_verified
        policy = rules.same_nhs_one_verified if one else rules.same_nhs_both_unverified
        if policy != "SCORE":
            return PairDecision(LinkState(policy), "nhs-same-one-verified" if one else "nhs-same-unverified",
                                score, vector)  # fmt: skip
        return _banded(score, vector, rules, prefix="nhs-one-verified-" if one else "nhs-unverified-")
    return _banded(score, vector, rules, prefix="fs-")


def _supported(vector: Vector) -> bool:
    """Evidence beyond names, date of birth and sex: the NHS number, the postcode (its sector) or the phone."""
    return vector[0] == 0 or 0 <= vector[5] <= 1 or vector[6] == 0


def _contradicted(vector: Vector) -> bool:
    """The postcode is in another district, or the phone differs (present on both sides)."""
    return vector[5] == POSTCODE_DIFFERENT or vector[6] == 1


def _household_birthday(vector: Vector) -> bool:
    """Same date of birth (or one keying slip of it), family name (or a typo of it) and address (postcode or
    phone): one person, or twins."""
    if vector[3] not in (DOB_EXACT, DOB_SWAPPED, DOB_YEAR_TYPO) or not 0 <= vector[2] <= FAMILY_CLOSE:
        return False  # (names entered the wrong way round were already read the right way by compare)
    return vector[5] == 0 or vector[6] == 0


def _banded(score: float, vector: Vector, rules: Rules, *, prefix: str) -> PairDecision:
    if score >= rules.match_at:
        if vector[1] == GIVEN_DIFFERENT and vector[2] == FAMILY_DIFFERENT:
            # neither name agrees: a birthday, an address and a phone are what a household shares
            return PairDecision(LinkState.POSSIBLE_MATCH, prefix + "names-differ-review", score, vector)
        if not _supported(vector) and (rules.require_support or (rules.review_contradicted and _contradicted(vector))):
            # names, date of birth and sex alone are shared by strangers often enough in 10^6 people: with the
            # address or phone saying otherwise (and nothing else for it), a person must look
            return PairDecision(LinkState.POSSIBLE_MATCH, prefix + "unsupported-review", score, vector)
        return PairDecision(LinkState.MATCH, prefix + "match", score, vector)
    if score >= rules.review_at:
        return PairDecision(LinkState.POSSIBLE_MATCH, prefix + "review", score, vector)
    return PairDecision(LinkState.NO_MATCH, prefix + "no-match", score, vector)


def explain_pair(a: Demographics, b: Demographics, rules: Rules) -> tuple[PairDecision, tuple[Contribution, ...]]:
    """The decision for a pair and each field's level and weight (for ``mpi explain`` and review)."""
    decision = decide_pair(a, b, rules)
    return decision, rules.model.explain(decision.vector)
