"""Limits on what one request may ask for: query length, ``_count``, ``_include`` fan-out and depth, chains.

:func:`check_query` runs before any search work, on the raw query string, so a hostile query costs us only a
parse. Over-long or too-deep queries are refused with 400; an over-large ``_count`` is capped (FHIR lets a
server return fewer than asked) and the capped value is returned for the search to use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

import anyio

from bcconnect.config import SecuritySettings
from bcconnect.errors import InvalidRequest, ServiceUnavailable

_INCLUDE_PARAMS = ("_include", "_revinclude")


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """The numbers :func:`check_query` enforces."""

    max_query_length: int = 4096
    max_count: int = 1000
    max_includes: int = 8
    max_include_depth: int = 2
    max_chain_depth: int = 2

    @classmethod
    def from_settings(cls, settings: SecuritySettings, *, max_count: int) -> QueryLimits:
        """From ``[security]`` and the API's ``max_count``."""
        return cls(
            max_query_length=settings.max_query_length,
            max_count=max_count,
            max_includes=settings.max_includes,
            max_include_depth=settings.max_include_depth,
            max_chain_depth=settings.max_chain_depth,
        )


def chain_depth(name: str) -> int:
    """How many chained links a search parameter name has (each ``_has`` hop counts as one).

    >>> chain_depth("subject:Patient.general-practitioner.name"), chain_depth("code:text")
    (2, 0)
    >>> chain_depth("_has:Observation:patient:code")
    1
    """
    # FHIR parameter names use hyphens, never dots, so every dot is a chain link
    return name.count(".") + name.count("_has:")


def check_query(query: str, limits: QueryLimits) -> int | None:
    """Refuse a query over the limits (InvalidRequest, 400); return ``_count`` capped, or None if absent."""
    if len(query) > limits.max_query_length:
        raise InvalidRequest(f"the query is longer than {limits.max_query_length} characters")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, max_num_fields=1000)
    except ValueError as exc:
        raise InvalidRequest("the query has too many parameters") from exc
    # NUL cannot be stored or compared by PostgreSQL text; no FHIR value contains it
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidRequest("the query contains a NUL character")
    includes = [(k, v) for k, v in pairs if k.split(":", 1)[0] in _INCLUDE_PARAMS]
    if len(includes) > limits.max_includes:
        raise InvalidRequest(f"at most {limits.max_includes} _include/_revinclude parameters are allowed")
    iterating = sum(1 for k, _ in includes if k.endswith(":iterate") or k.endswith(":recurse"))
    if iterating > limits.max_include_depth:
        raise InvalidRequest(f"_include:iterate may go at most {limits.max_include_depth} levels deep")
    for key, _ in pairs:
        if chain_depth(key) > limits.max_chain_depth:
            raise InvalidRequest(f"chained parameters may have at most {limits.max_chain_depth} links")
    count: int | None = None
    for key, value in pairs:
        if key == "_count":
            # ASCII digits only: str.isdigit() alone accepts '²', which int() refuses
            if not (value.isascii() and value.isdigit()):
                raise InvalidRequest("_count must be a non-negative whole number", expression=["_count"])
            count = min(int(value[:12]), limits.max_count)
    return count


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """A wall-clock limit on one request (async code inside): ServiceUnavailable (503) when it runs out."""
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError as exc:
        raise ServiceUnavailable("the request took too long and was stopped") from exc
