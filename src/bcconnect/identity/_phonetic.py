"""A compact Double Metaphone: two phonetic keys (primary, alternate) for a name.

This follows the shape of Lawrence Philips' Double Metaphone (a primary key for the common English reading and
an alternate for other readings), with the rules that matter for names seen in the region's records: silent
letters, ``PH``/``GH``/``CK``/``SCH``/``TH``, soft and hard ``C``/``G``, ``J`` read as ``J`` or ``H``,
``W``/``Y`` as vowels, doubled letters. It is not a byte-for-byte port of the reference implementation; it is
written for blocking and for comparison, where what counts is that spelling variants of one name share a key.

>>> double_metaphone("Smith")
('SM0', 'SMT')
>>> double_metaphone("Smyth") == double_metaphone("Smith")
True
>>> double_metaphone("Catherine")[0] == double_metaphone("Katherine")[0]
True
>>> double_metaphone("Mohammed")[0] == double_metaphone("Muhammad")[0]
True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

_VOWELS: Final = frozenset("AEIOUY")
_MAX: Final = 6


class _Builder:
    """Collects the primary and alternate keys as the rules fire."""

    def __init__(self) -> None:
        self.primary: list[str] = []
        self.alternate: list[str] = []

    def add(self, primary: str, alternate: str | None = None) -> None:
        self.primary.append(primary)
        self.alternate.append(primary if alternate is None else alternate)

    def keys(self) -> tuple[str, str]:
        return "".join(self.primary)[:_MAX], "".join(self.alternate)[:_MAX]


# names repeat a great deal across records: computing each key once makes blocking and comparison cheap
@lru_cache(maxsize=65_536)
def double_metaphone(name: str) -> tuple[str, str]:
    """The (primary, alternate) phonetic keys of ``name`` (letters A–Z only are read; others are skipped)."""
    word = "".join(ch for ch in name.upper() if "A" <= ch <= "Z")
    if not word:
        return "", ""
    out = _Builder()
    length = len(word)

    def at(pos: int, *options: str) -> bool:
        return any(word.startswith(opt, pos) for opt in options) if 0 <= pos < length else False

    def char(pos: int) -> str:
        return word[pos] if 0 <= pos < length else ""

    pos = 0
    # initial silent letters and initial X
    if at(0, "GN", "KN", "PN", "WR", "PS"):
        pos = 1
    elif word[0] == "X":
        out.add("S")
        pos = 1
    elif word[0] in _VOWELS:
        out.add("A")
        pos = 1
    while pos < length:
        c = word[pos]
        step = 2 if char(pos + 1) == c and c != "C" else 1
        if c in _VOWELS:
            pass  # vowels count only at the start
        elif c == "B":
            # silent final B after M (Plumb)
            if not (pos == length - 1 and char(pos - 1) == "M"):
                out.add("P")
        elif c == "C":
            if at(pos, "CH"):
                # CHR-, CHL- and CH before a consonant are hard (Christopher); SCH is X / SK
                if at(pos + 2, "R", "L") or (pos == 0 and at(pos, "CHARAC", "CHORE")):
                    out.add("K")
                elif char(pos - 1) == "S":
                    out.add("K", "X")
                else:
                    out.add("X", "K")
                step = 2
            elif at(pos, "CIA"):
                out.add("X")
                step = 3
            elif at(pos + 1, "I", "E", "Y"):
                out.add("S")
                step = 2
            elif at(pos, "CK", "CQ", "CC"):
                out.add("K")
                step = 2
            else:
                out.add("K")
        elif c == "D":
            if at(pos, "DGE", "DGI", "DGY"):
                out.add("J")
                step = 3
            else:
                out.add("T")
                step = 2 if at(pos, "DT", "DD") else 1
        elif c == "F":
            out.add("F")
        elif c == "G":
            if char(pos + 1) == "H":
                if (pos > 0 and char(pos - 1) not in _VOWELS) or pos == 0:
                    out.add("K")
                elif at(pos - 1, "OUGH") or pos + 2 >= length:
                    out.add("F", "")  # Hough, Leigh: F in the primary reading, silent in the other
                step = 2
            elif char(pos + 1) == "N":
                out.add("N", "KN") if pos == 0 else out.add("KN", "N")
                step = 2
            elif at(pos + 1, "E", "I", "Y"):
                out.add("K", "J") if at(pos, "GET", "GER", "GIV", "GIR") or pos == 0 else out.add("J", "K")
                step = 2 if char(pos + 1) == "G" else 1
            else:
                out.add("K")
        elif c == "H":
            # H sounds only at the start or between vowels
            if (pos == 0 or char(pos - 1) in _VOWELS) and char(pos + 1) in _VOWELS:
                out.add("H")
        elif c == "J":
            if pos == 0 and at(pos, "JOSE", "JUAN"):
                out.add("H")
            else:
                out.add("J", "H" if pos == 0 else "J")
        elif c == "K":
            out.add("K")
        elif c == "L":
            out.add("L")
        elif c == "M":
            out.add("M")
        elif c == "N":
            out.add("N")
        elif c == "P":
            if char(pos + 1) == "H":
                out.add("F")
                step = 2
            else:
                out.add("P")
                step = 2 if at(pos + 1, "P", "B") else 1
        elif c == "Q":
            out.add("K")
        elif c == "R":
            out.add("R")
        elif c == "S":
            if at(pos, "SCH"):
                out.add("X", "SK")
                step = 3
            elif at(pos, "SH") or at(pos, "SIO", "SIA"):
                out.add("X", "S")
                step = 2
            elif at(pos, "SZ", "SS"):
                out.add("S")
                step = 2
            else:
                out.add("S")
        elif c == "T":
            if at(pos, "TH") and at(pos + 2, "OM", "AM"):
                out.add("T")  # Thomas, Thompson
                step = 2
            elif at(pos, "TH"):
                out.add("0", "T")  # 0 stands for the TH sound
                step = 2
            elif at(pos, "TIA", "TIO", "TCH"):
                out.add("X")
                step = 3
            else:
                out.add("T")
                step = 2 if at(pos, "TT", "TD") else 1
        elif c == "V":
            out.add("F")
        elif c == "W":
            # W before a vowel at the start is a consonant; elsewhere it colours the vowel
            if pos == 0 and char(pos + 1) in _VOWELS:
                out.add("A", "F")
            elif pos == 0 and char(pos + 1) == "H":
                out.add("A")
                step = 2
        elif c == "X":
            if pos != length - 1:
                out.add("KS")
        elif c == "Z":
            out.add("S", "TS" if at(pos + 1, "O", "I", "A") else "S")
        pos += step
    return out.keys()


def phonetic_key(name: str) -> str:
    """The primary Double Metaphone key (what blocking indexes on)."""
    return double_metaphone(name)[0]
