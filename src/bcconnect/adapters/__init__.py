"""The adapter SDK: pull raw records from a trust's system, page by page, with a resumable cursor.

It talks to the trusts and knows nothing of mapping or storage::

    async with open_source(config) as source:
        async with contextlib.aclosing(source.pages(cursor)) as pages:
            async for page in pages:
                ...                                   # land page.records and page.rejects, commit page.cursor
                await source.acknowledge(page.cursor)

Kinds: ``fhir_api`` (:class:`FhirApiSource`), ``json_api`` (:class:`JsonApiSource`), ``hl7v2`` file drop
(:class:`Hl7FileSource`) and HL7 v2 over MLLP (:func:`serve_mllp`, push rather than pull). Failures are
``bcconnect.errors.SourceError`` subclasses: ``SourceUnavailable`` after retries, ``SourceAuthError``,
``SourceProtocolError`` and ``CircuitOpen``.
"""

from __future__ import annotations

from bcconnect.adapters._breaker import BreakerState, CircuitBreaker
from bcconnect.adapters._fhir import DEFAULT_RESOURCE_TYPES, FetchPlan, FhirApiSource, TypeFailure, request_order
from bcconnect.adapters._fhir_cursor import merge_cursor_types
from bcconnect.adapters._hl7_files import Hl7FileSource
from bcconnect.adapters._hl7_record import UNPARSED_HL7, hl7_record
from bcconnect.adapters._http import FetchStats, Runtime
from bcconnect.adapters._json_api import JsonApiSource
from bcconnect.adapters._mllp import MllpSink, mllp_frame, serve_mllp
from bcconnect.adapters._open import open_source
from bcconnect.adapters._probe import Probe, TypeVerdict, probe_fhir_source
from bcconnect.adapters._retry import backoff_delay, parse_retry_after
from bcconnect.adapters._types import MllpDelivery, Page, RawRecord, RawReject, Source

__all__ = [
    "DEFAULT_RESOURCE_TYPES",
    "UNPARSED_HL7",
    "BreakerState",
    "CircuitBreaker",
    "FetchPlan",
    "FetchStats",
    "FhirApiSource",
    "Hl7FileSource",
    "JsonApiSource",
    "MllpDelivery",
    "MllpSink",
    "Page",
    "Probe",
    "RawRecord",
    "RawReject",
    "Runtime",
    "Source",
    "TypeFailure",
    "TypeVerdict",
    "backoff_delay",
    "hl7_record",
    "merge_cursor_types",
    "mllp_frame",
    "open_source",
    "parse_retry_after",
    "probe_fhir_source",
    "request_order",
    "serve_mllp",
]
