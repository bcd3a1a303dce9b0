"""The view the FHIR API reads through: resources for a caller, as stored JSON bytes.

A pure pass-through to the store for now: :class:`View` offers ``read``, ``vread``, ``history``, ``search``,
``everything`` and ``capabilities``, each taking the caller's :class:`AccessContext`. The identity layer will
extend it to golden patients and person-level expansion without changing these signatures.
"""

from bcconnect.view._context import OPEN_ACCESS, AccessContext
from bcconnect.view._view import HistoryPage, SearchResult, TypeCapability, View

__all__ = ["OPEN_ACCESS", "AccessContext", "HistoryPage", "SearchResult", "TypeCapability", "View"]
