"""Deterministic resource ids: the same source record always gets the same id, so a re-ingest updates.

``uuid5(BCCONNECT_NAMESPACE, f"{source_system}|{resource_type}|{source_key}")`` (docs/seams.md). References
between resources of one trust use the same recipe, so they resolve without a lookup.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Final

#: The uuid5 namespace of every id bcconnect mints (a fixed, random-once value; never change it).
BCCONNECT_NAMESPACE: Final = uuid.UUID("6f1f3c1e-4b8a-5d2e-9c61-0b7c9a1d2e3f")


@lru_cache(maxsize=1 << 16)  # references repeat (every record of a patient names it): hashing once is enough
def resource_id(source_system: str, resource_type: str, source_key: str) -> str:
    """The id of the resource of ``resource_type`` that ``source_key`` in ``source_system`` maps to.

    >>> resource_id("https://fhir.rl4.nhs.uk", "Patient", "Patient/123") == resource_id(
    ...     "https://fhir.rl4.nhs.uk", "Patient", "Patient/123")
    True
    >>> len(resource_id("https://fhir.rl4.nhs.uk", "Patient", "Patient/123"))
    36
    """
    return str(uuid.uuid5(BCCONNECT_NAMESPACE, f"{source_system}|{resource_type}|{source_key}"))


def reference(source_system: str, resource_type: str, source_key: str) -> str:
    """A literal reference ``Type/<id>`` to the resource ``source_key`` maps to."""
    return f"{resource_type}/{resource_id(source_system, resource_type, source_key)}"
