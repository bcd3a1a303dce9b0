"""Each linkage rule for real PAS noise, on small hand-made pairs (and a guard shown to fail when broken)."""

from __future__ import annotations

import dataclasses

import pytest

from bcconnect.identity import FIELDS, LinkState, Rules, compare, decide_pair, demographics
from bcconnect.identity._compare import name_levels, romanisation_key
from support.identity_patients import patient


def _level(field: str, a: dict[str, object], b: dict[str, object]) -> str:
    index = [f.name for f in FIELDS].index(field)
    level = compare(demographics(a), demographics(b))[index]
    return "missing" if level < 0 else FIELDS[index].levels[level]


def test_given_and_family_swapped_with_the_same_verified_nhs_number_match(rules: Rules) -> None:
    a = demographics(patient("a", given="Rajinder", family="Sandhu"))
    b = demographics(patient("b", given="Sandhu", family="Rajinder"))
    assert name_levels(a, b)[2] is True
    decision = decide_pair(a, b, rules)
    assert (decision.state, decision.rule) == (LinkState.MATCH, "nhs-verified-dob")
    # without any NHS number the swapped names still count as agreeing names
    a2 = demographics(patient("a2", nhs=None, given="Rajinder", family="Sandhu"))
    b2 = demographics(patient("b2", nhs=None, given="Sandhu", family="Rajinder"))
    assert decide_pair(a2, b2, rules).state is LinkState.MATCH


def test_a_one_digit_year_typo_with_the_same_verified_nhs_number_matches(rules: Rules) -> None:
    a = demographics(patient("a", birth="1985-06-02"))
    for typo in ("1958-06-02", "1986-06-02", "1995-06-02"):
        decision = decide_pair(a, demographics(patient("b", birth=typo)), rules)
        assert (decision.state, decision.rule) == (LinkState.MATCH, "nhs-verified-dob-year-typo"), typo
    # 1989 → 1990 changes two digits but is one year off: a typo as well
    decision = decide_pair(
        demographics(patient("c", birth="1989-06-02")), demographics(patient("d", birth="1990-06-02")), rules
    )
    assert decision.rule == "nhs-verified-dob-year-typo"
    # a year far off that is no single-digit slip is a conflict for review
    far = decide_pair(a, demographics(patient("e", birth="1971-06-02")), rules)
    assert (far.state, far.rule) == (LinkState.POSSIBLE_MATCH, "nhs-same-dob-conflict")


def test_both_unverified_nhs_numbers_with_everything_else_agreeing_link(rules: Rules) -> None:
    a = demographics(patient("a", status="02", phone=None))
    b = demographics(patient("b", status="05", postcode="WV10 9ZZ"))
    decision = decide_pair(a, b, rules)
    assert (decision.state, decision.rule) == (LinkState.MATCH, "nhs-unverified-match")


def test_twins_never_link_with_or_without_an_nhs_number(rules: Rules) -> None:
    sarah = patient("a", nhs=None, given="Sarah", gender="female")
    jane = patient("b", nhs=None, given="Jane", gender="female")
    decision = decide_pair(demographics(sarah), demographics(jane), rules)
    assert decision.score >= rules.match_at  # the demographics alone would link them
    assert (decision.state, decision.rule) == (LinkState.NO_MATCH, "twin-guard")
    # a twin's NHS number typed on the other twin's record (never traced, so not verified there): only review
    typed = decide_pair(
        demographics(patient("c", given="Sarah")), demographics(patient("d", given="Jane", status="02")), rules
    )
    assert (typed.state, typed.rule) == (LinkState.POSSIBLE_MATCH, "twin-guard-review")
    # verified on both sides but the sexes differ: a different person whatever the number says
    boy = demographics(patient("g", given="Daniel", gender="male"))
    assert decide_pair(demographics(patient("h", given="Sarah")), boy, rules).rule == "given-and-sex-differ-review"
    # twins named alike (Hassan, Hussein) without a shared NHS number: review at most
    hassan = demographics(patient("e", nhs=None, given="Hassan", family="Ali", gender="male"))
    hussein = demographics(patient("f", nhs="9990000026", status="02", given="Hussein", family="Ali", gender="male"))
    assert decide_pair(hassan, hussein, rules).state is not LinkState.MATCH


def test_one_number_traced_on_both_records_is_one_person_known_by_two_given_names(rules: Rules) -> None:
    """A middle name used as the first name, where no record holds both names: both records were traced to
    the same NHS number (verified, 01), so the other given name is evidence of nothing but how clerks record."""
    sarah = demographics(patient("a", given="Sarah"))
    jane = demographics(patient("b", given="Jane"))
    decision = decide_pair(sarah, jane, rules)
    assert (decision.state, decision.rule) == (LinkState.MATCH, "nhs-verified-given-differs")


def test_a_middle_name_or_a_keying_slip_in_one_household_is_not_a_twin(rules: Rules) -> None:
    """Without a shared NHS number: one record's first name being the other's middle name, or one keystroke
    between two first names, links; names that only sound alike (Hassan/Hussein) stay for review."""
    full = demographics(patient("a", given="Sarah Jane"))
    middle = demographics(patient("b", nhs=None, given="Jane"))
    assert decide_pair(full, middle, rules).state is LinkState.MATCH
    kiran = demographics(patient("c", given="Kiran"))
    for slip in ("Kirna", "Kirann", "Kiren"):
        decision = decide_pair(kiran, demographics(patient("d", nhs=None, given=slip)), rules)
        assert decision.state is LinkState.MATCH, slip
    hassan = demographics(patient("e", given="Hassan", gender="male"))
    hussein = demographics(patient("f", nhs=None, given="Hussein", gender="male"))
    assert decide_pair(hassan, hussein, rules).state is not LinkState.MATCH


def test_the_keying_slip_test_is_what_separates_a_typo_from_a_twin(rules: Rules) -> None:
    """Injected violation: with every pair of names taken for a keying slip, twins named alike auto-link."""
    import bcconnect.identity._decide as decide

    hassan = demographics(patient("e", given="Hassan", gender="male"))
    hasan = demographics(patient("f", nhs=None, given="Hasaan", gender="male"))
    hussein = demographics(patient("g", nhs=None, given="Hussein", gender="male"))
    assert decide_pair(hassan, hasan, rules).state is LinkState.MATCH
    assert decide_pair(hassan, hussein, rules).state is not LinkState.MATCH
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decide, "keying_slip", lambda a, b: True)
        assert decide_pair(hassan, hussein, rules).state is LinkState.MATCH


def test_the_sex_check_is_what_keeps_traced_twins_of_both_sexes_apart(rules: Rules) -> None:
    """Injected violation: with the sex comparison blinded, a verified number shared by a girl and a boy of one
    household links them."""
    import bcconnect.identity._decide as decide

    girl = demographics(patient("a", given="Sarah"))
    boy = demographics(patient("b", given="Daniel", gender="male"))
    assert decide_pair(girl, boy, rules).state is LinkState.POSSIBLE_MATCH
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decide, "SEX_DIFFERENT", 99)
        assert decide_pair(girl, boy, rules).state is LinkState.MATCH


def test_the_twin_guard_is_what_keeps_twins_apart(rules: Rules) -> None:
    """Injected violation: with the guard's given-name test blinded, the same twins auto-link."""
    import bcconnect.identity._decide as decide

    sarah, jane = (
        demographics(patient("a", nhs=None, given="Sarah")),
        demographics(patient("b", nhs=None, given="Jane")),
    )
    assert decide_pair(sarah, jane, rules).state is LinkState.NO_MATCH
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decide, "_household_birthday", lambda vector: False)
        assert decide_pair(sarah, jane, rules).state is LinkState.MATCH


def test_a_parent_and_child_with_one_name_at_one_address_never_link(rules: Rules) -> None:
    father = demographics(patient("a", nhs=None, given="Delroy", family="Campbell", gender="male", birth="1961-04-09"))
    son = demographics(patient("b", nhs=None, given="Delroy", family="Campbell", gender="male", birth="1989-11-23"))
    decision = decide_pair(father, son, rules)
    assert (decision.state, decision.rule) == (LinkState.NO_MATCH, "generation-guard")


def test_no_name_in_common_never_links_automatically(rules: Rules) -> None:
    # a household member with the same birthday (a twin under a married name): both names differ
    a = demographics(patient("a", nhs=None, given="Christine", family="Evans"))
    b = demographics(patient("b", nhs="9990000026", status="04", given="Amelia", family="Dudley-Smith"))
    assert decide_pair(a, b, rules).state is not LinkState.MATCH


@pytest.mark.parametrize(
    ("field", "left", "right", "level"),
    [
        ("given", "Mohammed", "Muhammad", "alias"),
        ("given", "Mohamed", "Muhammed", "phonetic"),
        ("family", "Siddiqui", "Siddiqi", "phonetic"),
        ("family", "Chowdhury", "Choudhry", "phonetic"),
        ("family", "Dudley-Smith", "Smith", "part"),
        ("family", "Kaur Sandhu", "Sandhu", "part"),
        ("family", "KAUR-SANDHU", "Kaur Sandhu", "exact"),
        ("given", "Gurpreet", "Preet", "alias"),
        ("given", "Katarzyna", "Kasia", "alias"),
        ("given", "MR JOHN", "john", "exact"),
    ],
)
def test_name_levels_for_pas_variants(field: str, left: str, right: str, level: str) -> None:
    a = patient("a", **{field: left})  # type: ignore[arg-type]
    b = patient("b", **{field: right})  # type: ignore[arg-type]
    assert _level(field, a, b) == level


def test_a_middle_name_used_as_the_first_name_is_its_own_level() -> None:
    full = patient("a", given="Sarah Jane")
    assert _level("given", full, patient("b", given="Jane")) == "middle"
    assert _level("given", patient("c", given="Sarah"), patient("d", given="Jane")) == "different"


def test_romanisation_keys_join_spellings_but_not_different_names() -> None:
    assert romanisation_key("zainab") == romanisation_key("zaynab")
    assert romanisation_key("dhillon") == romanisation_key("dillon")
    assert romanisation_key("kumar") != romanisation_key("khan")


def test_names_and_birthday_alone_against_a_different_address_go_to_review_when_asked(rules: Rules) -> None:
    a = demographics(patient("a", nhs=None, phone=None))
    nothing_else = demographics(patient("b", nhs=None, postcode=None, phone=None))
    elsewhere = demographics(patient("c", nhs=None, postcode="B66 1AB", phone=None))
    assert decide_pair(a, nothing_else, rules).state is LinkState.MATCH
    assert decide_pair(a, elsewhere, rules).state is LinkState.MATCH  # the packaged rules: off
    rules = dataclasses.replace(rules, review_contradicted=True)
    assert decide_pair(a, nothing_else, rules).state is LinkState.MATCH
    decision = decide_pair(a, elsewhere, rules)
    assert decision.score >= rules.match_at
    assert (decision.state, decision.rule) == (LinkState.POSSIBLE_MATCH, "fs-unsupported-review")
    # the strict setting asks for support even when nothing contradicts
    strict = dataclasses.replace(rules, require_support=True)
    assert decide_pair(a, nothing_else, strict).rule == "fs-unsupported-review"


@pytest.mark.parametrize("order", ["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"])
def test_the_in_memory_index_joins_persons_whatever_the_arrival_order(rules: Rules, order: str) -> None:
    from bcconnect.identity._evaluate import MemoryIndex

    records = {
        "x": patient("x", ods="RL4", status="02", phone=None),
        "y": patient("y", ods="RBK", nhs=None, given="Peggy", birth="1951-03-14", postcode="DY1 4AB",
                     phone="07700900999"),
        "z": patient("z", ods="RNA", status="01", given="Peggy", postcode="DY1 4AB", phone="07700900999"),
    }  # fmt: skip
    index = MemoryIndex(rules)
    for key in order:
        index.link(demographics(records[key]))
    assert len({index.person_of[k] for k in "xyz"}) == 1


def test_a_parents_unverified_number_on_the_childs_record_does_not_link_them(rules: Rules) -> None:
    father = demographics(patient("a", given="Delroy", family="Campbell", gender="male", birth="1961-04-09"))
    son = demographics(patient("b", status="03", given="Del", family="Campbell", gender="male", birth="1989-11-23"))
    decision = decide_pair(father, son, rules)
    assert (decision.state, decision.rule) == (LinkState.NO_MATCH, "generation-guard")


def test_another_first_name_and_another_sex_never_link_automatically(rules: Rules) -> None:
    """A twin of the other sex whose record carries the other twin's number (unverified) and an old address:
    not a household any more, so only this rule keeps the high score from linking them."""
    emma = demographics(patient("a", given="Emma", family="Wilon", status="04", postcode="DY4 9TX"))
    anthony = demographics(
        patient("b", given="Anthony Susan", family="Wilson", gender="male", postcode="DY4 9NT", phone=None)
    )
    decision = decide_pair(emma, anthony, rules)
    assert (decision.state, decision.rule) == (LinkState.POSSIBLE_MATCH, "given-and-sex-differ-review")
    # without a number in common they are never linked (and never joined into one person)
    emma_only = demographics(patient("c", nhs=None, given="Emma", family="Wilson"))
    anthony_only = demographics(patient("d", nhs=None, given="Anthony", family="Wilson", gender="male"))
    assert decide_pair(emma_only, anthony_only, rules).rule == "given-and-sex-differ"
    # a sex recorded differently with a first name that agrees is a keying error, and is scored as usual
    miskeyed = demographics(patient("e", given="Emma", family="Wilson", gender="male"))
    assert decide_pair(demographics(patient("f", given="Emma", family="Wilson")), miskeyed, rules).state is not (
        LinkState.NO_MATCH
    )


def test_the_sex_and_given_name_rule_is_what_keeps_the_pair_apart(rules: Rules) -> None:
    """Injected violation: with the rule's sex comparison blinded, the twins above link automatically."""
    import bcconnect.identity._decide as decide

    emma = demographics(patient("a", given="Emma", family="Wilon", status="04", postcode="DY4 9TX"))
    anthony = demographics(
        patient("b", given="Anthony Susan", family="Wilson", gender="male", postcode="DY4 9NT", phone=None)
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decide, "SEX_DIFFERENT", 99)
        assert decide_pair(emma, anthony, rules).state is LinkState.MATCH
