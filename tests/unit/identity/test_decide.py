"""The tiered rules: NHS number rules decide first, Fellegi–Sunter bands the rest."""

from __future__ import annotations

from bcconnect.identity import LinkState, Rules, decide_pair, demographics
from support.identity_patients import patient


def test_two_different_verified_nhs_numbers_never_link_even_with_identical_demographics(rules: Rules) -> None:
    a = demographics(patient("a", nhs="9990000018"))
    b = demographics(patient("b", nhs="9990000026"))
    decision = decide_pair(a, b, rules)
    assert decision.state is LinkState.NO_MATCH
    assert decision.rule == "nhs-verified-differ"


def test_same_verified_nhs_and_dob_match_despite_a_house_move(rules: Rules) -> None:
    a = demographics(patient("a"))
    b = demographics(patient("b", ods="RBK", postcode="WS1 2CD", phone=None))
    assert decide_pair(a, b, rules).state is LinkState.MATCH
    assert decide_pair(a, b, rules).rule == "nhs-verified-dob"


def test_same_nhs_with_conflicting_dob_or_names_is_only_possible(rules: Rules) -> None:
    a = demographics(patient("a"))
    other_dob = demographics(patient("b", birth="1951-07-30"))
    other_names = demographics(patient("c", given="Kwame", family="Mensah"))
    assert decide_pair(a, other_dob, rules).rule == "nhs-same-dob-conflict"
    assert decide_pair(a, other_names, rules).state is LinkState.POSSIBLE_MATCH


def test_a_swapped_day_and_month_is_not_a_conflict(rules: Rules) -> None:
    a = demographics(patient("a", birth="1950-03-04"))
    b = demographics(patient("b", birth="1950-04-03"))
    assert decide_pair(a, b, rules).rule == "nhs-verified-dob-swapped"


def test_same_nhs_unverified_on_both_sides_is_scored_and_links_when_everything_agrees(rules: Rules) -> None:
    a = demographics(patient("a", status="02"))
    b = demographics(patient("b", status=None))
    decision = decide_pair(a, b, rules)
    assert (decision.state, decision.rule) == (LinkState.MATCH, "nhs-unverified-match")
    # the unverified number is evidence, not proof: another person's number with nothing else agreeing
    other = demographics(patient("c", status="03", given="Kwame", family="Mensah", birth="1980-05-05",
                                 gender="male", postcode="B66 1AB", phone=None))  # fmt: skip
    assert decide_pair(a, other, rules).state is LinkState.NO_MATCH


def test_without_nhs_numbers_the_score_bands_decide(rules: Rules) -> None:
    a = demographics(patient("a", nhs=None))
    full = demographics(patient("b", nhs=None))
    moved = demographics(patient("c", nhs=None, given="Margret", postcode="DY1 4AB", phone="07700900999"))
    stranger = demographics(
        patient("d", nhs=None, given="Harjit", family="Sandhu", gender="male", postcode="B66 1AB", phone=None)
    )
    assert decide_pair(a, full, rules).state is LinkState.MATCH
    assert decide_pair(a, moved, rules).state is LinkState.POSSIBLE_MATCH
    assert decide_pair(a, stranger, rules).state is LinkState.NO_MATCH
