"""FHIR R4 search: parameter definitions, index extraction and query parsing (§3.1.1 semantics).

This package knows FHIR, not SQL: :func:`extract_index` turns a resource into typed index rows and
:func:`parse_search` turns query parameters into a :class:`SearchQuery`; ``bcconnect.store`` runs both against
its tables.
"""

from bcconnect.search._dates import Bound, DateCondition, date_condition, date_matches
from bcconnect.search._definitions import ParamType, Registry, SearchParam, registry
from bcconnect.search._extract import IndexRows, extract_index, split_reference
from bcconnect.search._fhirpath import UnsupportedExpression, compile_expression
from bcconnect.search._model import (
    Chain,
    Clause,
    DateValue,
    Include,
    Prefix,
    QuantityValue,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringValue,
    Summary,
    TokenValue,
    Total,
    UriValue,
)
from bcconnect.search._query import MAX_REQUEST_INTEGER, TRANSPORT_PARAMS, parse_non_negative, parse_search
from bcconnect.search._values import (
    MAX_TIME,
    MIN_TIME,
    date_range,
    normalize_string,
    number_range,
    token_hash,
)

__all__ = [
    "MAX_REQUEST_INTEGER",
    "MAX_TIME",
    "MIN_TIME",
    "TRANSPORT_PARAMS",
    "Bound",
    "Chain",
    "Clause",
    "DateCondition",
    "DateValue",
    "Include",
    "IndexRows",
    "ParamType",
    "Prefix",
    "QuantityValue",
    "ReferenceValue",
    "Registry",
    "SearchParam",
    "SearchQuery",
    "SortKey",
    "StringValue",
    "Summary",
    "TokenValue",
    "Total",
    "UnsupportedExpression",
    "UriValue",
    "compile_expression",
    "date_condition",
    "date_matches",
    "date_range",
    "extract_index",
    "normalize_string",
    "number_range",
    "parse_non_negative",
    "parse_search",
    "registry",
    "split_reference",
    "token_hash",
]
