"""The information-governance screen: one per request, applied once, inside the store's answer.

:meth:`Screen.build` gathers, in the caller's read transaction, every fact that decides what the caller may
see: the persons in the objection register (all their records at every trust), the restricted (``R``)
persons, the caller's sensitivity grant, ``patient/`` confinement and the resource types their SMART scopes
can read. It turns them into two things that always agree, because they come from the same facts:

- :attr:`Screen.visibility`, the store's SQL predicate: every store function that answers a caller takes it,
  so withheld rows never take part in a count, a filter, a sort key, an include, a chain or a page offset;
- :meth:`Screen.apply`, for resources read one by one (read, vread, golden Patients) and as a last check on
  everything the store returned: it withholds by the same rules and redacts a restricted person's whereabouts
  (address, telecom, contacts, GP; encounter and appointment locations).

Because the store predicate and the per-resource rules are one object, a new endpoint cannot screen one and
forget the other; and because what is withheld never reaches a count, an objector and an unknown person get
answers of the same shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, V3_CONFIDENTIALITY_SYSTEM
from bcconnect.logging import get_logger
from bcconnect.security._filters import (
    DEFAULT_POLICY,
    SensitivityGrant,
    SensitivityPolicy,
    is_sensitive,
    redact_for_restricted_patient,
)
from bcconnect.security._notes import current_notes, note_access
from bcconnect.security._objection import OBJECTION_FAMILY, list_objections
from bcconnect.store import (
    ALIAS_FAMILY,
    AliasSnapshot,
    SearchPage,
    StoredResource,
    Tx,
    Visibility,
    counters_and_tokens,
    current_ids_with_token,
    use_alias_snapshot,
    visible_versions,
)

log = get_logger(__name__)

OBJECTION = "objection"
SENSITIVE = "sensitive"
RESTRICTED = "restricted"
OUT_OF_SCOPE = "out-of-scope"

#: ``related(tx, patient_id)``: every Patient id of the same person (its source records and golden id).
#: Objection and restriction are facts about the person, so one objecting record withholds them all.
Related = Callable[[Tx, str], Iterable[str]]

#: search parameters on the elements a restricted patient never shows (they match, sort and include nothing)
RESTRICTED_SEARCH_PARAMS: Mapping[str, frozenset[str]] = {
    "Patient": frozenset(
        {
            "address",
            "address-city",
            "address-country",
            "address-postalcode",
            "address-state",
            "address-use",
            "email",
            "phone",
            "telecom",
            "general-practitioner",
        }
    ),
    "Encounter": frozenset({"location", "location-period"}),
    "Appointment": frozenset({"location", "actor"}),
}


#: reference parameters that put a resource in the clinical context of its target: pointing through one of
#: them at a sensitive resource makes a resource sensitive too (see ``Visibility.context_params``)
CONTEXT_PARAMS = frozenset(
    {
        "encounter",
        "context",
        "based-on",
        "reason-reference",
        "result",
        "assessed-condition",
        "diagnosis",
        "part-of",
        "focus",
        "derived-from",
        "has-member",
        "condition",
        "evidence-detail",
        "episode-of-care",
        "target",
    }
)


def _only_itself(tx: Tx, patient_id: str) -> Iterable[str]:
    return (patient_id,)


class Caller(SensitivityGrant, Protocol):
    """What the screen needs to know about the caller (the view's AccessContext satisfies it)."""

    @property
    def patient(self) -> str | None:
        """The Patient a ``patient/``-scoped caller is confined to."""
        ...

    @property
    def readable_types(self) -> frozenset[str] | None:
        """The resource types the caller's scopes may read (None: every type)."""
        ...


@dataclass(frozen=True, slots=True)
class _Grant:
    allow_sensitive: bool
    patient: str | None = None
    readable_types: frozenset[str] | None = None


@dataclass(slots=True)
class Screened:
    """What may be shown, and what the audit needs to know about what was not."""

    resources: list[StoredResource]
    #: reasons anything was withheld (empty: nothing was)
    withheld: set[str] = field(default_factory=set)
    #: every patient the resources belonged to, shown or not ("Patient/<id>")
    patients: set[str] = field(default_factory=set)

    @property
    def any_withheld(self) -> bool:
        """Whether anything was withheld."""
        return bool(self.withheld)


def _person_ids(tx: Tx, ids: Iterable[str], related: Related) -> frozenset[str]:
    out: set[str] = set()
    for pid in ids:
        out.add(pid)
        out.update(related(tx, pid))
    return frozenset(out)


def _register(tx: Tx) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """The objection register as Patient ids named directly and NHS-number tokens."""
    direct: set[str] = set()
    numbers: list[tuple[str, str]] = []
    for objection in list_objections(tx):
        if objection.subject.startswith("Patient/"):
            direct.add(objection.subject.removeprefix("Patient/"))
        else:
            numbers.append((NHS_NUMBER_SYSTEM, objection.subject))
    return frozenset(direct), tuple(numbers)


def _objecting_records(tx: Tx, register: tuple[frozenset[str], tuple[tuple[str, str], ...]]) -> set[str]:
    direct, numbers = register
    # resolved per request: a Patient carrying an objector's NHS number may have arrived since
    return set(direct) | (current_ids_with_token(tx, "Patient", "identifier", list(numbers)) if numbers else set())


def _restricted_records(tx: Tx) -> set[str]:
    return set(current_ids_with_token(tx, "Patient", "_security", [(V3_CONFIDENTIALITY_SYSTEM, "R")]))


def objecting_patient_ids(tx: Tx, related: Related = _only_itself) -> frozenset[str]:
    """Every Patient id (source records and golden ids) of every person in the objection register."""
    return _person_ids(tx, _objecting_records(tx, _register(tx)), related)


def restricted_patient_ids(tx: Tx, related: Related = _only_itself) -> frozenset[str]:
    """Every Patient id of every person one of whose records is labelled restricted (v3-Confidentiality R)."""
    return _person_ids(tx, _restricted_records(tx), related)


class ScreenFacts:
    """The screen's slow-changing facts, kept in this process and checked against the store on every request.

    Two families are cached: the objection register, and who belongs to whom (each Patient id's person: its
    golden id and source records, from ``related``, which must read only the store's reference aliases). Each
    request reads the store's change counters once, in its own snapshot; the register's writers and the alias
    writers bump their counter in the transaction that changes them, so a changed counter (from this process or
    any other, on SQLite or PostgreSQL) drops the cached family before it is used. What changes with every
    ingested Patient (which records carry an objector's NHS number or the restricted label) is still read per
    request, with one indexed query each.
    """

    def __init__(self, related: Related, *, max_persons: int = 100_000) -> None:
        self._related = related
        self._max_persons = max_persons
        self._lock = threading.Lock()
        self._objection_version: int | None = None
        self._register: tuple[frozenset[str], tuple[tuple[str, str], ...]] = (frozenset(), ())
        self._alias_version: int | None = None
        self._persons: dict[str, frozenset[str]] = {}
        #: the alias table as learnt at ``_alias_version``: a request's alias lookups are answered from it
        self._aliases = AliasSnapshot(-1)
        #: how many person lookups were answered from the cache (observable in tests)
        self.hits = 0

    @property
    def related(self) -> Related:
        """The person-membership function the cached facts come from."""
        return self._related

    def _current(
        self, counters: Mapping[str, int], tx: Tx
    ) -> tuple[tuple[frozenset[str], tuple[tuple[str, str], ...]], dict[str, frozenset[str]]]:
        """The register and the person map that hold at these counters (read in ``tx``); the alias snapshot of
        their version is bound to ``tx``, so the request's alias lookups are answered from what is known.

        Each alias version gets its own map and snapshot objects, so a request on an older snapshot never reads
        (or fills) those of a newer one.
        """
        objection, alias = counters.get(OBJECTION_FAMILY, 0), counters.get(ALIAS_FAMILY, 0)
        with self._lock:
            if alias != self._alias_version:
                self._persons, self._alias_version = {}, alias
                self._aliases = AliasSnapshot(alias)
            if objection != self._objection_version:
                self._register, self._objection_version = _register(tx), objection
            use_alias_snapshot(tx, self._aliases)
            return self._register, self._persons

    def _expand(self, tx: Tx, ids: Iterable[str], cached: dict[str, frozenset[str]]) -> frozenset[str]:
        out: set[str] = set()
        for pid in ids:
            found = cached.get(pid)
            if found is None:
                found = frozenset({pid, *self._related(tx, pid)})
                if len(cached) < self._max_persons:
                    cached[pid] = found
            else:
                self.hits += 1
            out |= found
        return frozenset(out)

    def facts(
        self, tx: Tx, confined: str | None = None
    ) -> tuple[frozenset[str], frozenset[str], frozenset[str] | None]:
        """Every Patient id of the objectors, of the restricted persons and (when ``confined`` is given) of the
        person a ``patient/`` token is confined to, at this transaction's snapshot."""
        # one statement: the change counters, the restricted records, and the records carrying the NHS numbers of
        # the register as this process last read it (the register seldom changes; when the counters say it did,
        # it is read again and its numbers looked up again)
        with self._lock:
            assumed = self._register
        counters, found = counters_and_tokens(
            tx,
            {
                "objecting": ("Patient", "identifier", assumed[1]),
                "restricted": ("Patient", "_security", [(V3_CONFIDENTIALITY_SYSTEM, "R")]),
            },
        )
        register, cached = self._current(counters, tx)
        records = set(register[0]) | found["objecting"] if register is assumed else _objecting_records(tx, register)
        objecting = self._expand(tx, records, cached)
        restricted = self._expand(tx, found["restricted"], cached)
        allowed = self._expand(tx, [confined], cached) if confined is not None else None
        return objecting, restricted, allowed


@dataclass(frozen=True, slots=True)
class Screen:
    """Everything that decides what one caller may see, fixed for one request (see the module docstring)."""

    visibility: Visibility
    allow_sensitive: bool
    policy: SensitivityPolicy
    #: places and GPs pointed to by restricted persons' records (never shown alongside them)
    hidden_places: frozenset[str] = frozenset()
    #: the caller's read transaction: resources read one by one are checked against :attr:`visibility` in it
    tx: Tx | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        tx: Tx,
        caller: Caller | SensitivityGrant,
        *,
        policy: SensitivityPolicy = DEFAULT_POLICY,
        related: Related = _only_itself,
        confine_to: str | None = None,
        facts: ScreenFacts | None = None,
    ) -> Screen:
        """The screen for ``caller`` at this transaction's snapshot.

        ``facts``: the process's cache of objectors and persons (its ``related`` is used); without it every
        fact is read from the store.
        """
        confined = confine_to if confine_to is not None else getattr(caller, "patient", None)
        types = getattr(caller, "readable_types", None)
        if facts is not None:
            hidden, restricted, allowed = facts.facts(tx, confined)
        else:
            allowed = _person_ids(tx, [confined], related) if confined is not None else None
            restricted = restricted_patient_ids(tx, related)
            hidden = objecting_patient_ids(tx, related)
        labels = frozenset() if caller.allow_sensitive else frozenset(f"{s}|{c}" for s, c in policy.labels)
        visibility = Visibility(
            hidden_patients=hidden,
            only_patients=allowed,
            hidden_labels=labels,
            types=types,
            restricted_patients=restricted,
            restricted_params=RESTRICTED_SEARCH_PARAMS,
            context_params=CONTEXT_PARAMS if labels else frozenset(),
        )
        return cls(visibility, caller.allow_sensitive, policy, tx=tx)

    def _reason(self, resource: StoredResource, owner: str | None, parsed: dict[str, Any] | None) -> str | None:
        vis = self.visibility
        if owner is not None and owner in vis.hidden_patients:
            return OBJECTION
        if vis.only_patients is not None and owner is not None and owner not in vis.only_patients:
            return OUT_OF_SCOPE
        if not vis.allows_type(resource.resource_type):
            return OUT_OF_SCOPE
        if parsed is not None and not self.allow_sensitive and is_sensitive(parsed, self.policy):
            return SENSITIVE
        return None

    def apply(self, resources: Sequence[StoredResource], *, expected_clean: bool = False) -> Screened:
        """Withhold and redact ``resources`` (order kept).

        ``expected_clean``: the resources come from a store query already filtered by :attr:`visibility`, so
        nothing should be withheld here; if something is, it is withheld and logged (a screen defect), never
        shown.
        """
        owners = {id(r): _owner(r) for r in resources}
        # resources read one by one are decided by the same SQL predicate as searches (context labels included)
        sql_visible: set[tuple[str, str, int]] | None = None
        if not expected_clean and self.tx is not None:
            keys = [(r.resource_type, r.id, r.version) for r in resources if r.body is not None]
            sql_visible = visible_versions(self.tx, keys, self.visibility)
        result = Screened(resources=[], patients={f"Patient/{p}" for p in owners.values() if p is not None})
        hidden_places: set[str] = set(self.hidden_places)
        kept: list[StoredResource] = []
        for resource in resources:
            if resource.body is None:  # a deletion in a history page: nothing to show or hide
                kept.append(resource)
                continue
            owner = owners[id(resource)]
            parsed = orjson.loads(resource.body) if b'"security"' in resource.body else None
            reason = self._reason(resource, owner, parsed)
            key = (resource.resource_type, resource.id, resource.version)
            if reason is None and sql_visible is not None and key not in sql_visible:
                reason = SENSITIVE
            if reason is not None:
                result.withheld.add(reason)
                if expected_clean:
                    log.error("screen_mismatch", resource_type=resource.resource_type, reason=reason)
                continue
            if self.visibility.is_restricted(owner):
                original = parsed if parsed is not None else orjson.loads(resource.body)
                hidden_places.update(r for r in _references(original) if r.startswith("Location/"))
                hidden_places.update(_references(original.get("generalPractitioner")))
                resource = replace(resource, body=orjson.dumps(redact_for_restricted_patient(original)))
            kept.append(resource)
        for resource in kept:
            if _owner(resource) is None and f"{resource.resource_type}/{resource.id}" in hidden_places:
                result.withheld.add(RESTRICTED)
                continue
            result.resources.append(resource)
        note_access(patients=result.patients, withheld=result.withheld)
        return result

    def page(self, page: SearchPage) -> SearchPage:
        """A store page (already filtered by :attr:`visibility`) with its restricted whereabouts redacted."""
        matches = self.apply(page.matches, expected_clean=True)
        included = self.apply(page.included, expected_clean=True)
        return replace(page, matches=matches.resources, included=included.resources)


#: the elements that name the patient a resource is about, when the store did not record its compartment
_SUBJECT_ELEMENTS = ("subject", "patient", "beneficiary")


def _owner(resource: StoredResource) -> str | None:
    if resource.resource_type == "Patient":
        return resource.id
    if resource.compartment is not None:
        return resource.compartment
    if resource.body is None or b'"Patient/' not in resource.body:
        return None
    parsed = orjson.loads(resource.body)
    for name in _SUBJECT_ELEMENTS:
        ref = parsed.get(name)
        target = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(target, str) and target.startswith("Patient/"):
            return target.removeprefix("Patient/")
    return None


def _references(value: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere inside a JSON value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def screen_resources(
    tx: Tx,
    resources: Sequence[StoredResource],
    access: SensitivityGrant,
    *,
    policy: SensitivityPolicy = DEFAULT_POLICY,
    confine_to: str | None = None,
    related: Related = _only_itself,
) -> Screened:
    """Build the caller's :class:`Screen` and apply it to ``resources`` (for callers outside a request)."""
    grant = _Grant(access.allow_sensitive, confine_to, getattr(access, "readable_types", None))
    return Screen.build(tx, grant, policy=policy, related=related).apply(resources)


def withheld_in_request() -> bool:
    """Whether the request being served had anything withheld (for its audit record only, never the answer)."""
    notes = current_notes()
    return notes is not None and bool(notes.withheld)
