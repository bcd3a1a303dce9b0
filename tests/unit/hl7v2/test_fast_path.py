"""The parser's fast path for plain fields builds exactly what the general split would."""

from __future__ import annotations

import pytest

from bcconnect.hl7v2._encoding import EncodingCharacters, unescape
from bcconnect.hl7v2._message import _trim
from bcconnect.hl7v2._parser import _split_field

ENC = EncodingCharacters()


def _general(text: str) -> tuple[tuple[tuple[str, ...], ...], ...]:
    repetitions = []
    for rep in text.split(ENC.repetition):
        components = [
            tuple(unescape(sub, ENC) for sub in comp.split(ENC.subcomponent)) for comp in rep.split(ENC.component)
        ]
        repetitions.append(tuple(_trim(c) for c in components))
    return tuple(repetitions)


@pytest.mark.parametrize("text", ["", "abc", "Smith ", "  ", "20261101", "A^B", "x~y", "a&b", "T\\F\\S", "^^", "~"])
def test_every_field_shape_splits_as_the_general_rule_says(text: str) -> None:
    """Plain values take the fast path; anything with a delimiter or escape takes the general one; both agree."""
    assert _split_field(text, ENC) == _general(text)
