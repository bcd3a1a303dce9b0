"""Unique Mod-11-valid NHS numbers in the ``999`` test range, one per person index.

The range ``999 000 000x`` – ``999 999 999x`` has 10⁶ nine-digit prefixes, of which 909,091 have a valid
check digit: that is how many distinct persons can carry a test NHS number. Person ``i`` gets the ``i``-th
valid prefix in a seed-independent shuffled order (an affine bijection of the prefixes), so numbers do not
reveal the person index. Persons beyond the capacity carry none (see the sandbox README).
"""

from __future__ import annotations

from array import array
from typing import Final

from bcconnect_sandbox.wire import check_digit

_SPACE: Final = 1_000_000
# multiplier coprime to 10**6: a bijection of the prefixes that scatters neighbouring indices
_MULTIPLIER: Final = 387_133
_OFFSET: Final = 271_829


class NhsNumberAllocator:
    """Maps a person index to its NHS number, growing a cache of valid prefixes only as far as asked."""

    def __init__(self) -> None:
        self._prefixes = array("l")
        self._next_candidate = 0

    @property
    def capacity(self) -> int:
        """How many distinct valid numbers the ``999`` range holds (909,091)."""
        return 909_091

    def number(self, index: int) -> str | None:
        """The NHS number of person ``index``, or None beyond the range's capacity."""
        if index < 0:
            raise ValueError(f"person index must not be negative, got {index}")
        if index >= self.capacity:
            return None
        while len(self._prefixes) <= index:
            self._extend()
        prefix = self._prefixes[index]
        digits = f"999{prefix:06d}"
        check = check_digit(digits)
        assert check is not None  # only valid prefixes are cached
        return f"{digits}{check}"

    def _extend(self) -> None:
        # one candidate at a time keeps the cache exactly as long as the largest index asked for
        while self._next_candidate < _SPACE:
            candidate = (self._next_candidate * _MULTIPLIER + _OFFSET) % _SPACE
            self._next_candidate += 1
            if check_digit(f"999{candidate:06d}") is not None:
                self._prefixes.append(candidate)
                return
        raise ValueError("the 999 range is exhausted")


#: One process-wide allocator: the mapping does not depend on the seed, so it can be shared.
ALLOCATOR: Final = NhsNumberAllocator()
