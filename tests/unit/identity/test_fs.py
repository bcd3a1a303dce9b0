"""Comparison levels, Fellegi–Sunter scoring and EM: EM recovers the m probabilities data were drawn with."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bcconnect.identity import FIELDS, compare, demographics, jaro_winkler
from bcconnect.identity._compare import NULL, Vector
from bcconnect.identity._fs import expectation_maximisation
from support.identity_patients import patient


def test_jaro_winkler_scores_typos_high_and_strangers_low() -> None:
    assert jaro_winkler("cartwright", "catrwright") > 0.9
    assert jaro_winkler("cartwright", "singh") < 0.6


def test_comparison_levels() -> None:
    a = demographics(patient("a"))
    nickname = demographics(patient("b", given="Maggie", nhs=None))
    vector = compare(a, nickname)
    assert vector[0] == NULL  # no NHS number on one side: no evidence either way
    assert FIELDS[1].levels[vector[1]] == "alias"
    assert demographics(patient("d", birth="1950-14-03")).birth_date is None  # not a date at all
    e = demographics(patient("e", birth="1950-12-03"))
    f = demographics(patient("f", birth="1950-03-12"))
    assert FIELDS[3].levels[compare(e, f)[3]] == "day_month_swapped"
    g = demographics(patient("g", postcode="WV10 1XY"))
    assert FIELDS[5].levels[compare(a, g)[5]] == "sector"
    typo = demographics(patient("h", family="Catrwright"))
    assert FIELDS[2].levels[compare(a, typo)[2]] in ("phonetic", "close")


def test_scores_order_pairs_by_evidence(rules) -> None:  # type: ignore[no-untyped-def]
    a = demographics(patient("a", nhs=None))
    same = demographics(patient("b", nhs=None))
    moved = demographics(patient("c", nhs=None, postcode="DY1 4AB", phone=None))
    stranger = demographics(
        patient("d", nhs=None, given="James", family="Singh", birth="1988-07-01", postcode="B66 1AB", phone=None)
    )
    scores = [rules.model.score(compare(a, x)) for x in (same, moved, stranger)]
    assert scores[0] > scores[1] > 0 > scores[2]


def _draw(rng: random.Random, probs: list[float]) -> int:
    return rng.choices(range(len(probs)), weights=probs)[0]


def test_em_recovers_m_probabilities_from_a_mixture() -> None:
    """Vectors drawn from known m (30% of pairs) and u: EM, u fixed, finds m and the match share."""
    rng = random.Random(3)
    true_m = [
        [0.95, 0.05],
        [0.85, 0.05, 0.04, 0.03, 0.03],
        [0.9, 0.04, 0.03, 0.03],
        [0.97, 0.01, 0.01, 0.01],
        [0.99, 0.01],
        [0.8, 0.05, 0.05, 0.1],
        [0.9, 0.1],
    ]
    u = [
        [0.001, 0.999],
        [0.02, 0.01, 0.01, 0.01, 0.95],
        [0.02, 0.01, 0.01, 0.96],
        [0.01, 0.001, 0.05, 0.939],
        [0.5, 0.5],
        [0.01, 0.02, 0.07, 0.9],
        [0.001, 0.999],
    ]
    vectors: Counter[Vector] = Counter()
    for _ in range(20_000):
        source = true_m if rng.random() < 0.3 else u
        vectors[tuple(_draw(rng, p) for p in source)] += 1
    result = expectation_maximisation(vectors, u)
    assert result.converged
    assert result.prior == pytest.approx(0.3, abs=0.02)
    for estimated, expected in zip(result.m, true_m, strict=True):
        assert estimated[0] == pytest.approx(expected[0], abs=0.03)
