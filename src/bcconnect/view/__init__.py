"""The view the FHIR API reads through: resources for a caller, as JSON bytes, person-centred.

:class:`View` offers ``read``, ``vread``, ``history``, ``search``, ``everything``, ``match`` (``Patient/$match``),
``freshness`` and ``capabilities``, each taking the caller's :class:`AccessContext`. ``Patient/<person id>`` is
the golden Patient; every Patient reference is re-pointed to it (the source reference kept in the
:data:`SOURCE_REFERENCE_EXTENSION`); ``patient=<person id>`` and the golden ``$everything`` span every trust.
``freshness_extension``/``freshness_header`` state how current each trust's data is on a Bundle and a response.
In a person's ``$everything`` one fact sent by two trusts appears once with both trusts' tags.
"""

# the store's and the search's types and parsing a front end needs, named here so api and app (which may import
# view, never store or search) annotate and parse with the same definitions
from bcconnect.search import TRANSPORT_PARAMS, Summary, parse_non_negative, registry
from bcconnect.store import SourceFreshness, StoredResource
from bcconnect.view._bulk import BulkItem
from bcconnect.view._context import OPEN_ACCESS, AccessContext
from bcconnect.view._dedupe import ALSO_RECORDED_AS_EXTENSION
from bcconnect.view._export import export_view_ndjson
from bcconnect.view._feed import caller_visibility, changed_resources, person_members, store_time, visible_keys
from bcconnect.view._freshness import (
    FRESHNESS_EXTENSION,
    FRESHNESS_HEADER,
    freshness_extension,
    freshness_header,
)
from bcconnect.view._match import MATCH_GRADE_EXTENSION
from bcconnect.view._open import open_view
from bcconnect.view._person import PERSON_MODEL_DOC, SOURCE_REFERENCE_EXTENSION
from bcconnect.view._population import POPULATION_TYPES, PopulationPage
from bcconnect.view._provenance import PROVENANCE_DOC, provenance_id
from bcconnect.view._provenance import SEARCH_PARAMS as PROVENANCE_SEARCH_PARAMS
from bcconnect.view._provenance_read import target_types as provenance_target_types
from bcconnect.view._view import HistoryPage, SearchResult, TypeCapability, View

__all__ = [
    "ALSO_RECORDED_AS_EXTENSION",
    "FRESHNESS_EXTENSION",
    "FRESHNESS_HEADER",
    "MATCH_GRADE_EXTENSION",
    "OPEN_ACCESS",
    "PERSON_MODEL_DOC",
    "POPULATION_TYPES",
    "PROVENANCE_DOC",
    "PROVENANCE_SEARCH_PARAMS",
    "SOURCE_REFERENCE_EXTENSION",
    "TRANSPORT_PARAMS",
    "AccessContext",
    "BulkItem",
    "HistoryPage",
    "PopulationPage",
    "SearchResult",
    "SourceFreshness",
    "StoredResource",
    "Summary",
    "TypeCapability",
    "View",
    "caller_visibility",
    "changed_resources",
    "export_view_ndjson",
    "freshness_extension",
    "freshness_header",
    "open_view",
    "parse_non_negative",
    "person_members",
    "provenance_id",
    "provenance_target_types",
    "registry",
    "store_time",
    "visible_keys",
]
