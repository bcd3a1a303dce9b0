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
    #: reference parameters that put a resource in the clinical context of what they point to: a row pointing
    #: through one of them at a resource with a hidden label (or at an encounter a labelled resource belongs to)
    #: is withheld as well — the viral load of an HIV diagnosis, the report of that result, the encounter of
    #: that diagnosis and everything recorded in it
    context_params: frozenset[str] = frozenset()

    @classmethod
    def everything(cls) -> Visibility:
        """Every row: for system work (ingest, identity, export before its own screen), never for a caller."""
        return cls()

    def key(self) -> tuple[object, ...]:
        """A hashable summary (for caches of screened answers: one caller's is not another's)."""
        return (
            self.hidden_patients,
            self.only_patients,
            self.hidden_labels,
            self.types,
            self.restricted_patients,
            tuple(sorted((t, frozenset(c)) for t, c in self.restricted_params.items())),
            self.context_params,
        )

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
            conds.append(f"NOT {_labelled(f'{alias}.vid', labels)}")
            params += labels
            if self.context_params:
                context = sorted(self.context_params)
                # an encounter a labelled resource belongs to is sensitive itself
                own, own_params = _sensitive_encounter(f"{alias}.res_id", labels)
                conds.append(f"NOT ({alias}.res_type = 'Encounter' AND {own})")
                params += own_params
                # a resource pointing (in context) at a labelled resource, or at such an encounter
                via, via_params = _sensitive_encounter("ct.res_id", labels)
                conds.append(
                    "NOT EXISTS (SELECT 1 FROM idx_reference cr JOIN resources ct"
                    " ON ct.res_type = cr.target_type AND ct.res_id = cr.target_id AND ct.deleted = 0"
                    f" WHERE cr.vid = {alias}.vid AND cr.param IN ({_marks(context)})"
                    f" AND ({_labelled('ct.vid', labels)} OR (ct.res_type = 'Encounter' AND {via})))"
                )
                params += [*context, *labels, *via_params]
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


def _labelled(vid: str, labels: Sequence[str]) -> str:
    """SQL: version ``vid`` carries one of ``labels`` (``system|code``) in ``meta.security``."""
    return (
        f"EXISTS (SELECT 1 FROM idx_token sl WHERE sl.vid = {vid} AND sl.param = '_security'"
        f" AND sl.system || '|' || sl.code IN ({_marks(labels)}))"
    )


def _sensitive_encounter(encounter_id: str, labels: Sequence[str]) -> SQL:
    """SQL: the Encounter ``encounter_id`` has a current resource with one of ``labels`` recorded in it."""
    # the current versions recording it, found through resource_versions' primary key: ``resources`` has no index
    # on ``vid``, and joining it there made SQLite build an automatic index over every current resource for each
    # query (13 ms at 20k resources, growing with the store)
    return (
        "EXISTS (SELECT 1 FROM idx_reference er JOIN resource_versions es ON es.vid = er.vid AND es.t_end IS NULL"
        f" WHERE er.target_id = {encounter_id} AND er.target_type = 'Encounter' AND er.param = 'encounter'"
        f" AND EXISTS (SELECT 1 FROM idx_token el WHERE el.vid = es.vid AND el.param = '_security'"
        f" AND el.system || '|' || el.code IN ({_marks(labels)})))",
        list(labels),
    )


def _marks(values: Sequence[object] | Iterable[object]) -> str:
    return ",".join("?" * len(list(values)))
