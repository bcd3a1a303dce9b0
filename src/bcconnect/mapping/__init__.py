"""The mapping engine: declarative mapping files turn raw trust records into FHIR R4 UK Core resources.

>>> from pathlib import Path
>>> from bcconnect.mapping import load_mapping_set, MappingContext
>>> ms = load_mapping_set(Path("mappings/rl4-fhir"))  # doctest: +SKIP
>>> ms.map("Patient", payload, context=MappingContext(...)).resources  # doctest: +SKIP

See ``mappings/README.md`` for the file format, and ``bcconnect mappings test|explain|lint``.
"""

from __future__ import annotations

from bcconnect.mapping._rules import TraceEntry
from bcconnect.mapping.engine import MappingContext, MappingFile, MappingResult, MappingSet
from bcconnect.mapping.loader import load_mapping_set
from bcconnect.mapping.terminology import TerminologyError, UnmappedCode

__all__ = [
    "MappingContext",
    "MappingFile",
    "MappingResult",
    "MappingSet",
    "TerminologyError",
    "TraceEntry",
    "UnmappedCode",
    "load_mapping_set",
]
