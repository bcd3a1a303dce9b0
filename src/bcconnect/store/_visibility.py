"""Which stored rows a caller may see, as SQL: the screen applied inside every query that answers a caller.

A :class:`Visibility` is built once per request by the security layer (``bcconnect.security.Screen``) from
the objection register, the restricted patients, the caller's sensitivity grant, ``patient/`` confinement and
SMART scopes. Every store function that answers a caller (search, includes, chains, sorting, counts,
``$everything``, history) takes one as a required argument and applies it *in the SQL*, so what is withheld
never takes part in a count, a filter, a sort, an include or a page offset: nothing can be learned from the
shape of an answer that could not be learned from its contents.

Rules, per version row ``v``:

- rows of a hidden patient (``v.compartment`` in ``hidden_patients``) never exist;
- with ``only_patients`` (``patient/`` confinement), rows of any other patient never exist;
- rows carrying a hidden security label (``idx_token`` ``_security`` ``system|code``) never exist;
- rows of a type outside ``types`` (SMART scopes) never exist;
- for a restricted patient (``restricted_patients``), the search parameters in ``restricted_params`` behave as
  if the element were absent: they match no value, ``:missing=true`` and ``:not`` match, they sort last and
  nothing is included through them.
"""

# ruff: noqa: S608 - SQL assembled from fixed fragments and aliases; every value is a "?" parameter

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SQL = tuple[str, list[object]]


@dataclass(frozen=True, slots=True)
class Visibility:
    """The rows one caller may see (see the module docstring); :meth:`everything` for system reads."""

    hidden_patients: frozenset[str] = frozenset()
    #: None: any patient; otherwise only rows of these patients (and rows of no patient)
    only_patients: frozenset[str] | None = None
    #: ``system|code`` security labels whose rows are withheld
    hidden_labels: frozenset[str] = frozenset()
    #: None: every type; otherwise only rows of these types
    types: frozenset[str] | None = None
    restricted_patients: frozenset[str] = frozenset()
    #: resource type → parameter codes on elements a restricted patient never shows
    restricted_params: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def everything(cls) -> Visibility:
        """Every row: for system work (ingest, identity, export before its own screen), never for a caller."""
        return cls()

    @property
    def unscreened(self) -> bool:
        """Whether this visibility hides nothing."""
        return not (
            self.hidden_patients
            or self.only_patients is not None
            or self.hidden_labels
            or self.types is not None
            or self.restricted_patients
        )

    def rows(self, alias: str) -> SQL:
        """The condition "version row ``alias`` may be seen" and its parameters (``1 = 1`` when unscreened)."""
        conds: list[str] = []
        params: list[object] = []
        if self.hidden_patients:
            ids = sorted(self.hidden_patients)
            conds.append(f"({alias}.compartment IS NULL OR {alias}.compartment NOT IN ({_marks(ids)}))")
            params += ids
        if self.only_patients is not None:
            ids = sorted(self.only_patients)
            inside = f"{alias}.compartment IN ({_marks(ids)})" if ids else "1 = 0"
            conds.append(f"({alias}.compartment IS NULL OR {inside})")
            params += ids
        if self.types is not None:
            names = sorted(self.types)
            conds.append(f"{alias}.res_type IN ({_marks(names)})" if names else "1 = 0")
            params += names
        if self.hidden_labels:
            labels = sorted(self.hidden_labels)
            conds.append(
                f"NOT EXISTS (SELECT 1 FROM idx_token sl WHERE sl.vid = {alias}.vid AND sl.param = '_security'"
                f" AND sl.system || '|' || sl.code IN ({_marks(labels)}))"
            )
            params += labels
        if not conds:
            return "1 = 1", []
        return " AND ".join(conds), params

    def hides_param(self, resource_type: str, code: str) -> bool:
        """Whether ``code`` on ``resource_type`` is an element some restricted patient's rows hide."""
        return bool(self.restricted_patients) and code in self.restricted_params.get(resource_type, frozenset())

    def restricted_row(self, alias: str) -> SQL:
        """The condition "version row ``alias`` belongs to a restricted patient"."""
        ids = sorted(self.restricted_patients)
        if not ids:
            return "1 = 0", []
        return f"({alias}.compartment IS NOT NULL AND {alias}.compartment IN ({_marks(ids)}))", list(ids)

    def is_restricted(self, compartment: str | None) -> bool:
        """Whether a row of this compartment belongs to a restricted patient."""
        return compartment is not None and compartment in self.restricted_patients

    def allows_type(self, resource_type: str) -> bool:
        """Whether rows of ``resource_type`` may be seen at all."""
        return self.types is None or resource_type in self.types


def _marks(values: Sequence[object] | Iterable[object]) -> str:
    return ",".join("?" * len(list(values)))
