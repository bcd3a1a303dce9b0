"""A region-sized store for the Bulk Data benchmark, written straight into the tables an export reads.

Going through ingest (``put_resources``: every search index of every resource) builds about 1,100 resources a
second here, so the 130k-person store (4M resources) would take an hour; this writes the same rows the store
writes for those resources, but only the tables a Bulk Data export reads, in bulk (``executemany`` on SQLite,
``COPY`` on PostgreSQL):

- ``resource_versions`` and ``resources``: one version per resource (``t = 1``), the body as the store serves it
  (``meta.versionId`` and ``meta.lastUpdated`` stamped), its compartment (the source Patient);
- ``patient_compartment``: each clinical resource and the source Patient in their Patient's compartment;
- ``reference_alias``: each person's golden Patient ``g<i>`` and source Patient ``pat<i>`` (so every reference
  to the source Patient is re-pointed in what is served, as in a real region);
- ``idx_reference`` rows for the ``encounter`` parameter and ``idx_token`` rows for ``_security`` labels: what
  the sensitivity screen reads (the other search indexes are not written; an export does not read them).

Each person (``TEMPLATES`` are generated in full, the others are copies of them under their own ids): a golden
Patient (tagged golden, ``link`` seealso to the source), the source Patient and
``per_patient - 1`` clinical resources from ``bench/store_data.py`` (Observations, Encounters, Conditions,
medication, allergies, procedures), each Observation recorded in one of the person's Encounters. Every 100th
person has an HIV diagnosis labelled at ingest (v3-ActCode ``HIV``) recorded in their first Encounter, so that
Encounter and the Observations recorded in it are withheld by context from a grant without the sensitive scope.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from store_data import nhs_number, patient_resources, shared

from bcconnect.fhir.constants import PERSON_ID_SYSTEM, V3_ACT_CODE_SYSTEM
from bcconnect.identity import GOLDEN_TAG
from bcconnect.search import token_hash
from bcconnect.store import Store, Tx

STAMP = "2026-12-01T09:00:00.000Z"
HIV = (V3_ACT_CODE_SYSTEM, "HIV")
#: one person in this many has a labelled (HIV) diagnosis
SENSITIVE_EVERY = 100
VERSION_COLUMNS = (
    "vid", "res_type", "res_id", "version", "t", "last_updated", "content_hash", "deleted", "body", "compartment",
)  # fmt: skip
RESOURCE_COLUMNS = (
    "res_type", "res_id", "vid", "version", "t", "last_updated", "content_hash", "compartment", "source", "deleted",
)  # fmt: skip


class Rows:
    """The rows of a batch of persons, per table."""

    def __init__(self) -> None:
        self.versions: list[tuple[object, ...]] = []
        self.resources: list[tuple[object, ...]] = []
        self.compartment: list[tuple[object, ...]] = []
        self.references: list[tuple[object, ...]] = []
        self.tokens: list[tuple[object, ...]] = []
        self.aliases: list[tuple[object, ...]] = []

    def add(self, vid: int, body: dict[str, Any], compartment: str | None) -> None:
        rtype, rid = body["resourceType"], body["id"]
        meta = body.setdefault("meta", {})
        meta["versionId"] = "1"
        meta["lastUpdated"] = STAMP
        data = orjson.dumps(body)
        digest = f"{vid:016x}"
        self.versions.append((vid, rtype, rid, 1, 1, STAMP, digest, 0, data, compartment))
        self.resources.append((rtype, rid, vid, 1, 1, STAMP, digest, compartment, "bench", 0))
        if compartment is not None:
            self.compartment.append((compartment, vid, rtype))
        encounter = body.get("encounter")
        if isinstance(encounter, dict):
            target = encounter["reference"]
            self.references.append((vid, rtype, "encounter", "Encounter", target.split("/", 1)[1], target))
        for label in meta.get("security", ()):
            system, code = label["system"], label["code"]
            self.tokens.append(
                (vid, rtype, "_security", system, code, token_hash(rtype, "_security", None, code),
                 token_hash(rtype, "_security", system, code), token_hash(rtype, "_security", system, None), None)
            )  # fmt: skip


def person(index: int, per_patient: int, vid: int, rows: Rows) -> int:
    """Add one person's rows from version key ``vid``; the next free key."""
    rng = random.Random(index)
    source = f"pat{index}"
    golden = f"g{index}"
    writes = patient_resources(index, per_patient, rng)
    bodies = [orjson.loads(w.body) for w in writes]
    encounters = [b["id"] for b in bodies if b["resourceType"] == "Encounter"]
    for body in bodies:
        if body["resourceType"] == "Observation" and encounters:
            body["encounter"] = {"reference": f"Encounter/{rng.choice(encounters)}"}
    if index % SENSITIVE_EVERY == 0 and encounters:
        bodies.append(
            {"resourceType": "Condition", "id": f"{source}-hiv",
             "meta": {"security": [{"system": HIV[0], "code": HIV[1]}]},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]},
             "subject": {"reference": f"Patient/{source}"}, "encounter": {"reference": f"Encounter/{encounters[0]}"}}
        )  # fmt: skip
    patient = bodies[0]
    rows.add(
        vid,
        {
            "resourceType": "Patient",
            "id": golden,
            "meta": {"tag": [dict(GOLDEN_TAG)]},
            "identifier": [
                {"system": PERSON_ID_SYSTEM, "value": golden},
                {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number(index)},
            ],
            "name": patient["name"],
            "gender": patient["gender"],
            "birthDate": patient["birthDate"],
            "address": patient["address"],
            "link": [{"other": {"reference": f"Patient/{source}"}, "type": "seealso"}],
        },
        golden,
    )
    vid += 1
    for body in bodies:
        rows.add(vid, body, source)
        vid += 1
    rows.aliases += [("Patient", source, golden), ("Patient", golden, golden)]
    return vid


def insert_rows(tx: Tx, table: str, columns: Sequence[str], rows: list[tuple[object, ...]]) -> None:
    """Write rows straight into a store table: PostgreSQL's COPY where the store offers it, else one INSERT each."""
    if not rows:
        return
    copy = getattr(tx, "copy_rows", None)  # PostgreSQL's COPY, where the store offers it
    if copy is not None:
        copy(table, columns, rows)
    else:
        marks = ",".join("?" * len(columns))
        tx.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608


def write_rows(tx: Tx, rows: Rows) -> None:
    """One batch into the store, in one transaction."""
    insert_rows(tx, "resource_versions", VERSION_COLUMNS, rows.versions)
    insert_rows(tx, "resources", RESOURCE_COLUMNS, rows.resources)
    insert_rows(tx, "patient_compartment", ("patient_id", "vid", "res_type"), rows.compartment)
    insert_rows(tx, "idx_reference", ("vid", "res_type", "param", "target_type", "target_id", "url"), rows.references)
    token_columns = ("vid", "res_type", "param", "system", "code", "hash_value", "hash_sys_value", "hash_sys", "text")
    insert_rows(tx, "idx_token", token_columns, rows.tokens)
    insert_rows(tx, "reference_alias", ("res_type", "member_id", "canonical_id"), rows.aliases)


#: distinct persons generated in full; the rest are copies of them under their own ids (fast to write)
TEMPLATES = 100
#: template person numbers: all the same width, so one's id is never a prefix of another's
_TEMPLATE_BASE = 1_000_000


def _templates(per_patient: int) -> list[Rows]:
    out = []
    for k in range(TEMPLATES):
        rows = Rows()
        person(_TEMPLATE_BASE + k, per_patient, 0, rows)
        out.append(rows)
    return out


def _copy(template: Rows, k: int, index: int, vid: int, rows: Rows) -> int:
    """Add template ``k``'s rows as person ``index`` from version key ``vid``; the next free key."""
    old_s, new_s = f"pat{_TEMPLATE_BASE + k}", f"pat{index}"
    old_g, new_g = f"g{_TEMPLATE_BASE + k}", f"g{index}"
    old_bs, new_bs, old_bg, new_bg = old_s.encode(), new_s.encode(), old_g.encode(), new_g.encode()

    def text(value: object) -> object:
        if isinstance(value, str):
            return value.replace(old_s, new_s).replace(old_g, new_g)
        if isinstance(value, bytes):
            return value.replace(old_bs, new_bs).replace(old_bg, new_bg)
        return value

    for row in template.versions:
        rows.versions.append((vid + int(row[0]), *(text(v) for v in row[1:6]), f"{vid + int(row[0]):016x}",
                              row[7], text(row[8]), text(row[9])))  # fmt: skip
    for row in template.resources:
        rows.resources.append((row[0], text(row[1]), vid + int(row[2]), *row[3:6], f"{vid + int(row[2]):016x}",
                               text(row[7]), *row[8:]))  # fmt: skip
    rows.compartment += [(text(r[0]), vid + int(r[1]), r[2]) for r in template.compartment]  # type: ignore[call-overload]
    rows.references += [(vid + int(r[0]), *(text(v) for v in r[1:])) for r in template.references]  # type: ignore[call-overload]
    rows.tokens += [(vid + int(r[0]), *r[1:]) for r in template.tokens]  # type: ignore[call-overload]
    rows.aliases += [tuple(text(v) for v in r) for r in template.aliases]
    return vid + len(template.versions)


def batches(persons: int, per_patient: int, size: int = 5000) -> Iterator[Rows]:
    """The store's rows, ``size`` persons a batch (the shared practitioners and organisations first).

    ``TEMPLATES`` persons are generated in full; person ``i`` is a copy of template ``i % TEMPLATES`` with its
    own ids (every id, reference, compartment and alias rewritten), so the store holds ``persons`` distinct
    persons with the variety of ``TEMPLATES``.
    """
    templates = _templates(per_patient)
    vid = 1
    rows = Rows()
    for w in shared():
        rows.add(vid, orjson.loads(w.body), None)
        vid += 1
    for index in range(persons):
        vid = _copy(templates[index % TEMPLATES], index % TEMPLATES, index, vid, rows)
        if (index + 1) % size == 0:
            yield rows
            rows = Rows()
    yield rows


async def build(store: Store, persons: int, per_patient: int) -> int:
    """Write the whole store; the number of resources written."""
    total = 0
    for rows in batches(persons, per_patient):
        await store.write(lambda tx, r=rows: write_rows(tx, r))  # type: ignore[misc]
        total += len(rows.versions)
    last = total

    def clock(tx: Tx) -> None:
        tx.execute("UPDATE store_clock SET t = 1, vid = ? WHERE id = 1", (last,))

    await store.write(clock)
    return total
