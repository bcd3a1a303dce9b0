"""The view as a population use reads it incrementally: what changed since a cursor, objectors left out.

A read model kept beside the record (the cohorts' facts) follows the current rows of a type in logical-time
order, page by page, and re-reads a person's whole record when it needs to (an objection withdrawn). Rows come
as stored — golden Patients (whose ``link``\\ s name the person's source Patients) and the trusts' records with
their references to source Patients — because a population use keys its facts by Patient id and resolves the
person from the golden Patients itself; nothing is re-pointed, so no JSON is rewritten. People in the objection
register are left out here, as in every population read of the view: their rows never reach the caller (the
cursor still moves past them).
"""

from __future__ import annotations

from dataclasses import dataclass

from bcconnect.security import objecting_patient_ids
from bcconnect.store import ChangedResource, Tx, changed_since, current_in_compartments, feed_horizon
from bcconnect.view._person import same_person_ids

#: the resource types a population read may follow (what the cohorts read)
POPULATION_TYPES = frozenset({"Patient", "Condition", "Encounter"})


@dataclass(frozen=True, slots=True)
class PopulationPage:
    """One page of changes: the rows a population use may see, and where the next page starts.

    ``next_after`` is ``(t, id)`` of the last row read (objectors' rows included), None when nothing was left up
    to ``until_t``. ``until_t`` is the logical time the feed stops at (the snapshot of the first page, unless
    given): a resource written after it is met by the next pass.
    """

    rows: list[ChangedResource]
    next_after: tuple[int, str] | None
    until_t: int


def _related(tx: Tx, patient_id: str) -> list[str]:
    return same_person_ids(tx, patient_id)


def _visible(tx: Tx, rows: list[ChangedResource]) -> list[ChangedResource]:
    objecting = objecting_patient_ids(tx, _related)
    if not objecting:
        return rows
    return [
        r
        for r in rows
        if r.resource.compartment not in objecting
        and not (r.resource.resource_type == "Patient" and r.resource.id in objecting)
    ]


def population_changes(
    tx: Tx, resource_type: str, *, after: tuple[int, str], until_t: int | None, limit: int
) -> PopulationPage:
    """Rows of ``resource_type`` changed after ``after`` (at most ``until_t``), objectors left out."""
    if resource_type not in POPULATION_TYPES:
        raise ValueError(f"a population read follows {', '.join(sorted(POPULATION_TYPES))}, not {resource_type}")
    until = feed_horizon(tx) if until_t is None else until_t
    found = changed_since(tx, resource_type, after_t=after[0], after_id=after[1], until_t=until, limit=limit)
    last = (found[-1].resource.t, found[-1].resource.id) if found else None
    return PopulationPage(_visible(tx, found), last, until)


def population_records(tx: Tx, patient_ids: list[str]) -> list[ChangedResource]:
    """The current rows of these Patients (golden or source ids) and of their compartments, every population
    type, objectors left out."""
    rows: list[ChangedResource] = []
    for resource_type in sorted(POPULATION_TYPES):
        rows += current_in_compartments(tx, resource_type, patient_ids)
    return _visible(tx, rows)
