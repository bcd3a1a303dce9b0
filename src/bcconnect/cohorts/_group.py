"""A computed cohort as a FHIR R4 ``Group``, and the public reads other packages (bulk export) build on.

The Group (``type = person``, ``actual = true``) carries ``quantity`` (members now), one ``member.entity`` per
golden Patient, ``characteristic`` entries summarising the definition, and three extensions: the whole
definition as JSON, when it was computed, and how many people the national data opt-out (per type) and
objections removed — a count, never who.
"""

from __future__ import annotations

from typing import Any

import orjson

from bcconnect.cohorts._tables import CohortRun, Member, current_members, list_runs, read_run
from bcconnect.store import Store, Tx
from bcconnect.view import View

BASE = "https://bcconnect.nhs.uk"
#: the cohort's definition (the declarative JSON form of its ``[cohort.*]`` table) as ``valueString``
DEFINITION_EXTENSION = f"{BASE}/StructureDefinition/cohort-definition"
#: when the membership was computed (``valueDateTime``)
COMPUTED_EXTENSION = f"{BASE}/StructureDefinition/cohort-computed"
#: how many people the definition matched but were removed: ``nationalOptOut``, ``type1OptOut``, ``objection``
#: and ``total`` (``valueInteger`` each)
REMOVED_EXTENSION = f"{BASE}/StructureDefinition/cohort-removed"
#: the system of each cohort's business identifier (its id, stable across recomputations)
COHORT_IDENTIFIER_SYSTEM = f"{BASE}/Id/cohort"
_CHARACTERISTIC_SYSTEM = f"{BASE}/CodeSystem/cohort-characteristic"


def _store(source: View | Store) -> Store:
    return source.store if isinstance(source, View) else source


def _characteristics(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``characteristic`` per top-level criterion, for a reader (the extension holds the exact rule)."""
    out = []
    criteria = definition.get("all") or definition.get("any") or [definition]
    for criterion in criteria if isinstance(criteria, list) else [criteria]:
        if not isinstance(criterion, dict):
            continue
        for key in sorted(criterion):
            if key in ("all", "any", "not"):
                code, text = key, orjson.dumps(criterion[key], option=orjson.OPT_SORT_KEYS).decode()
            else:
                code, text = key, orjson.dumps(criterion[key]).decode().strip('"')
            out.append(
                {
                    "code": {"coding": [{"system": _CHARACTERISTIC_SYSTEM, "code": code}], "text": code},
                    "valueCodeableConcept": {"text": text},
                    "exclude": False,
                }
            )
    return out


def group_resource(run: CohortRun, members: list[Member] | None, *, member_count: int) -> dict[str, Any]:
    """The Group for ``run`` (``members`` None: the summary form, without ``member``)."""
    now_removed = max(0, run.member_count - member_count)
    removed = [
        {"url": "nationalOptOut", "valueInteger": run.removed_type2},
        {"url": "type1OptOut", "valueInteger": run.removed_type1},
        {"url": "objection", "valueInteger": run.removed_objection},
        # opted out or objected since the computation: already left out of member and quantity
        {"url": "sinceComputed", "valueInteger": now_removed},
        {"url": "total", "valueInteger": run.removed + now_removed},
    ]
    group: dict[str, Any] = {
        "resourceType": "Group",
        "id": run.group_id,
        "meta": {"versionId": str(run.version), "lastUpdated": run.computed_at},
        "extension": [
            {
                "url": DEFINITION_EXTENSION,
                "valueString": orjson.dumps(run.definition, option=orjson.OPT_SORT_KEYS).decode(),
            },
            {"url": COMPUTED_EXTENSION, "valueDateTime": run.computed_at},
            {"url": REMOVED_EXTENSION, "extension": removed},
        ],
        "identifier": [{"system": COHORT_IDENTIFIER_SYSTEM, "value": run.group_id}],
        "active": True,
        "type": "person",
        "actual": True,
        "name": run.title,
        "quantity": member_count,
        "characteristic": _characteristics(run.definition),
    }
    if run.description:
        group["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{_escape(run.description)}</div>',
        }
    if members is not None and members:
        group["member"] = [{"entity": {"reference": f"Patient/{m.person_id}"}} for m in members]
    return group


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def member_person_ids(tx: Tx, group_id: str) -> list[str] | None:
    """In one transaction: the golden person ids of a cohort now (opt-out and objection applied), or None."""
    if read_run(tx, group_id) is None:
        return None
    return [m.person_id for m in current_members(tx, group_id)]


async def cohort_member_person_ids(source: View | Store, group_id: str) -> list[str] | None:
    """The golden Patient ids (person ids) in cohort ``group_id``, sorted; None when there is no such cohort.

    Already without anyone under the national data opt-out (either type) or in the objection register *now*,
    even if they opted out after the cohort was computed. This is what every export built from a cohort uses.
    """
    return await _store(source).read(lambda tx: member_person_ids(tx, group_id))


def _group_in(tx: Tx, group_id: str, with_members: bool) -> dict[str, Any] | None:
    run = read_run(tx, group_id)
    if run is None:
        return None
    members = current_members(tx, group_id)
    return group_resource(run, members if with_members else None, member_count=len(members))


async def cohort_group(source: View | Store, group_id: str, *, with_members: bool = True) -> dict[str, Any] | None:
    """The cohort as a FHIR ``Group`` (JSON object), or None when there is no such cohort.

    ``with_members=False`` leaves ``member`` out (the form for a caller who may see counts but not people).
    """
    return await _store(source).read(lambda tx: _group_in(tx, group_id, with_members))


async def cohort_groups(source: View | Store, *, with_members: bool = False) -> list[dict[str, Any]]:
    """Every computed cohort as a Group, by id (without members unless asked)."""

    def run(tx: Tx) -> list[dict[str, Any]]:
        out = []
        for found in list_runs(tx):
            members = current_members(tx, found.group_id)
            out.append(group_resource(found, members if with_members else None, member_count=len(members)))
        return out

    return await _store(source).read(run)


async def current_cohort_members(source: View | Store, group_id: str) -> list[Member] | None:
    """The members now (opt-out and objection applied) with borough and practice; None: not computed."""

    def run(tx: Tx) -> list[Member] | None:
        return None if read_run(tx, group_id) is None else current_members(tx, group_id)

    return await _store(source).read(run)


async def cohort_runs(source: View | Store) -> list[CohortRun]:
    """Every computed cohort's last run, by id."""
    return await _store(source).read(list_runs)
