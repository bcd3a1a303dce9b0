"""rapidfuzz's Jaro–Winkler replaced the hand-written one only after agreeing with it: kept here as the oracle.

What the differential showed: rapidfuzz and jellyfish (two C implementations) agree exactly everywhere. The
hand-written one differs in two ways: it added the common-prefix bonus even when the plain Jaro similarity is at
most 0.7 (Winkler's rule, which both libraries follow, adds it only above 0.7), and it counted an odd number of
out-of-order matches as a half transposition (the libraries round down, as Winkler's code does). On the name
pairs below (real names and every one-slip typo of them) the scores agree wherever they decide anything: within
0.05, and on the same side of the "close name" threshold (0.88), so every comparison level comes out the same.
"""

from __future__ import annotations

import random
import string
import sys

import jellyfish
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bcconnect.identity import jaro_winkler
from bcconnect.identity._compare import CLOSE_NAME


def reference_jaro_winkler(a: str, b: str) -> float:
    """The engine's former hand-written Jaro–Winkler (prefix scale 0.1, at most four prefix letters)."""
    jaro = reference_jaro(a, b)
    if a == b or not jaro:
        return jaro
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


def reference_jaro(a: str, b: str) -> float:
    """Plain Jaro similarity, as the hand-written function computed it."""
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    window = max(max(la, lb) // 2 - 1, 0)
    matched_b = [False] * lb
    matches_a: list[str] = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(lb, i + window + 1)):
            if not matched_b[j] and b[j] == ch:
                matched_b[j] = True
                matches_a.append(ch)
                break
    m = len(matches_a)
    if not m:
        return 0.0
    matches_b = [b[j] for j in range(lb) if matched_b[j]]
    transpositions = sum(x != y for x, y in zip(matches_a, matches_b, strict=True)) / 2
    return (m / la + m / lb + (m - transpositions) / m) / 3


def _agree(a: str, b: str) -> None:
    ours, reference = jaro_winkler(a, b), reference_jaro_winkler(a, b)
    assert (ours >= CLOSE_NAME) == (reference >= CLOSE_NAME), (a, b, ours, reference)
    if reference_jaro(a, b) > 0.7:
        assert abs(ours - reference) < 0.05, (a, b, ours, reference)


NAMES = st.text(alphabet=string.ascii_lowercase[:8], min_size=1, max_size=12)


@settings(max_examples=3000, deadline=None)
@given(NAMES, NAMES)
def test_rapidfuzz_and_jellyfish_agree_exactly(a: str, b: str) -> None:
    assert abs(jaro_winkler(a, b) - jellyfish.jaro_winkler_similarity(a, b)) < 1e-9


def _name_pairs() -> list[tuple[str, str]]:
    names = ["margaret", "margret", "martha", "marhta", "siddiqui", "siddiqi", "mohammed", "muhammad", "jones",
             "johnson", "dudleysmith", "smith", "kowalski", "kowalsky", "oneill", "neill"]  # fmt: skip
    pairs = [(a, b) for a in names for b in names]
    for a in names:  # one keyboard slip of each name: a letter dropped, doubled or two swapped
        for at in range(1, len(a) - 1):
            pairs += [
                (a, a[:at] + a[at + 1 :]),
                (a, a[:at] + a[at] + a[at:]),
                (a, a[:at] + a[at + 1] + a[at] + a[at + 2 :]),
            ]
    random.Random(7).shuffle(pairs)
    return pairs


def _agree_all() -> None:
    for a, b in _name_pairs():
        _agree(a, b)


def test_rapidfuzz_agrees_with_the_hand_written_one_on_names_and_their_typos() -> None:
    _agree_all()


def test_the_differential_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected violation: plain Jaro (the prefix bonus dropped) in place of rapidfuzz is caught."""
    monkeypatch.setattr(sys.modules[__name__], "jaro_winkler", reference_jaro)
    with pytest.raises(AssertionError):
        _agree_all()
