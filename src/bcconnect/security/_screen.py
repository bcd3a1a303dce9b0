"""Screening stored resources for one caller: objections, sensitivity and restricted patients, in one pass.

:func:`screen_resources` is what the view calls on everything it is about to return: a read's resource, a
search page's matches and ``_include``\\ d resources, a ``$everything`` page, a history page. For each resource
it finds the patient it belongs to (its compartment, or itself for a Patient), then

1. withholds every resource of a patient in the objection register (and notes the attempt for the audit);
2. withholds a sensitive resource unless the caller holds the sensitive grant;
3. redacts the whereabouts of a restricted (``R``) patient, and withholds the places and GP that patient's
   resources point to when they were included alongside.

It runs inside the caller's read transaction so the register and the patients are read at the same snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from bcconnect.security._filters import (
    DEFAULT_POLICY,
    SensitivityGrant,
    SensitivityPolicy,
    is_restricted_patient,
    is_sensitive,
    redact_for_restricted_patient,
)
from bcconnect.security._notes import current_notes, note_access
from bcconnect.security._objection import objecting_subjects, patient_identities
from bcconnect.store import SearchPage, StoredResource, Tx, read_current

OBJECTION = "objection"
SENSITIVE = "sensitive"
RESTRICTED = "restricted"
OUT_OF_SCOPE = "out-of-scope"

#: ``related(tx, patient_id)``: every Patient id of the same person (its source records and golden id).
#: Objection and restriction are facts about the person, so one objecting record withholds them all.
Related = Callable[[Tx, str], Iterable[str]]


def _only_itself(tx: Tx, patient_id: str) -> Iterable[str]:
    return (patient_id,)


@dataclass(slots=True)
class Screened:
    """What may be shown, and what the audit and the Bundle need to know about what was not."""

    resources: list[StoredResource]
    #: reasons anything was withheld (empty: nothing was); the Bundle then carries a withheld_entry()
    withheld: set[str] = field(default_factory=set)
    #: every patient the resources belonged to, shown or not ("Patient/<id>")
    patients: set[str] = field(default_factory=set)

    @property
    def any_withheld(self) -> bool:
        """Whether the answer is incomplete (say so, without saying what)."""
        return bool(self.withheld)


@dataclass(frozen=True, slots=True)
class _PatientFacts:
    objecting: bool
    restricted: bool
    gp_refs: frozenset[str]


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


def _one_patient(tx: Tx, pid: str) -> _PatientFacts:
    stored = read_current(tx, "Patient", pid)
    body: dict[str, Any] = orjson.loads(stored.body) if stored is not None and stored.body else {"id": pid}
    body.setdefault("id", pid)
    numbers, refs = patient_identities(body)
    return _PatientFacts(
        objecting=bool(objecting_subjects(tx, nhs_numbers=numbers, patient_refs=refs)),
        restricted=is_restricted_patient(body),
        gp_refs=frozenset(_references(body.get("generalPractitioner"))),
    )


def _patient_facts(tx: Tx, patient_ids: set[str], related: Related) -> dict[str, _PatientFacts]:
    """Facts per patient id, each about the whole person the id belongs to."""
    single: dict[str, _PatientFacts] = {}
    facts: dict[str, _PatientFacts] = {}
    for pid in sorted(patient_ids):
        group = {pid, *related(tx, pid)}
        parts = [single.setdefault(member, _one_patient(tx, member)) for member in sorted(group)]
        facts[pid] = _PatientFacts(
            objecting=any(p.objecting for p in parts),
            restricted=any(p.restricted for p in parts),
            gp_refs=frozenset().union(*(p.gp_refs for p in parts)),
        )
    return facts


def screen_resources(
    tx: Tx,
    resources: Sequence[StoredResource],
    access: SensitivityGrant,
    *,
    policy: SensitivityPolicy = DEFAULT_POLICY,
    confine_to: str | None = None,
    related: Related = _only_itself,
) -> Screened:
    """Apply objection, sensitivity and restriction rules to resources about to be returned (order kept).

    ``confine_to`` (a Patient id, from a ``patient/`` scope) also withholds every other person's resources.
    ``related`` widens each patient to its person (the view passes the identity layer's links).
    """
    owner_of = {id(r): _owner(r) for r in resources}
    owners = {pid for pid in owner_of.values() if pid is not None}
    facts = _patient_facts(tx, owners, related)
    allowed = {confine_to, *related(tx, confine_to)} if confine_to is not None else None
    result = Screened(resources=[], patients={f"Patient/{pid}" for pid in owners})
    hidden_places: set[str] = set()
    kept: list[StoredResource] = []
    for resource in resources:
        if resource.body is None:  # a deletion in a history page: nothing to show or hide
            kept.append(resource)
            continue
        pid = owner_of[id(resource)]
        fact = facts.get(pid) if pid is not None else None
        if fact is not None and fact.objecting:
            result.withheld.add(OBJECTION)
            continue
        if allowed is not None and pid is not None and pid not in allowed:
            result.withheld.add(OUT_OF_SCOPE)
            continue
        parsed: dict[str, Any] | None = None
        if b'"security"' in resource.body:
            parsed = orjson.loads(resource.body)
            if is_sensitive(parsed, policy) and not access.allow_sensitive:
                result.withheld.add(SENSITIVE)
                continue
        if fact is not None and fact.restricted:
            original = parsed if parsed is not None else orjson.loads(resource.body)
            hidden_places.update(r for r in _references(original) if r.startswith("Location/"))
            hidden_places.update(fact.gp_refs)
            resource = replace(resource, body=orjson.dumps(redact_for_restricted_patient(original)))
        kept.append(resource)
    for resource in kept:
        if _owner(resource) is None and f"{resource.resource_type}/{resource.id}" in hidden_places:
            result.withheld.add(RESTRICTED)
            continue
        result.resources.append(resource)
    note_access(patients=result.patients, withheld=result.withheld)
    return result


def screen_page(
    tx: Tx,
    page: SearchPage,
    access: SensitivityGrant,
    *,
    policy: SensitivityPolicy = DEFAULT_POLICY,
    confine_to: str | None = None,
    related: Related = _only_itself,
) -> SearchPage:
    """A search or ``$everything`` page with its matches and includes screened.

    Paging stays exact: ``offset`` is moved forward by the number of withheld matches, so that
    ``offset + len(matches)`` is still where the next page starts. When anything was withheld ``total`` is
    dropped, since a count of everything would reveal how much was withheld.
    """
    matches = screen_resources(tx, page.matches, access, policy=policy, confine_to=confine_to, related=related)
    included = screen_resources(tx, page.included, access, policy=policy, confine_to=confine_to, related=related)
    dropped = len(page.matches) - len(matches.resources)
    withheld = matches.any_withheld or included.any_withheld
    return replace(
        page,
        matches=matches.resources,
        included=included.resources,
        offset=page.offset + dropped,
        total=None if withheld else page.total,
    )


def screen_one(
    tx: Tx,
    resource: StoredResource,
    access: SensitivityGrant,
    *,
    policy: SensitivityPolicy = DEFAULT_POLICY,
    confine_to: str | None = None,
    related: Related = _only_itself,
) -> StoredResource | None:
    """One resource as the caller may see it, or None when it is withheld (the API then answers 404)."""
    result = screen_resources(tx, [resource], access, policy=policy, confine_to=confine_to, related=related)
    return result.resources[0] if result.resources else None


def withheld_in_request() -> bool:
    """Whether the request being served had anything withheld (its Bundle must say so)."""
    notes = current_notes()
    return notes is not None and bool(notes.withheld)
