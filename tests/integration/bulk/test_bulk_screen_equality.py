"""The export's own read decides exactly what the one screen decides, on every resource of a synced sandbox world.

A Bulk Data export reads whole pages at once (index ranges, sensitivity found set-based from the indexes,
stored bytes re-pointed by substitution). The oracle is the screen as a single read applies it
(:meth:`Screen.apply` on each resource alone: the store's SQL predicate, the parsed labels, redaction), then the
view's golden-Patient composition and re-pointing by parsing. On a four-trust sandbox world plus sensitive
records (labelled at ingest, and in context across batches, for a trust's person too), an objector and a
restricted person, the export's page must equal the oracle resource for resource and byte for byte, with and
without the sensitive grant, on SQLite and PostgreSQL. The adversarial part reads every file a system export
wrote, and proves it can fail: with the sensitivity sets emptied, a sensitive resource reaches a file and is
caught.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from bcconnect.bulk import ExportRequest, Level, export_to_folder
from bcconnect.security import NationalOptOut, add_objection, label_sensitive
from bcconnect.store import (
    ResourceWrite,
    SensitiveRows,
    Store,
    Tx,
    canonical_ids,
    export_rows,
    open_store,
    put_resources,
)
from bcconnect.view import AccessContext, View, registry
from bcconnect.view._person import person_centred, present_goldens
from bcconnect_sandbox import SandboxSettings
from support.sandbox_world import synced_world
from support.security_world import OBJECTOR_NHS, world

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(900)]

#: a small world at full density (vitals, lab panels, prescriptions, encounters with much recorded in them)
WORLD = SandboxSettings(persons=25, seed=31, density=1)
PLAIN = AccessContext(user="analyst", client_id="population-health", readable_types=None)
GRANTED = AccessContext(user="analyst", client_id="population-health", readable_types=None, allow_sensitive=True)
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def _sensitive_records(person: str, encounter: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An HIV diagnosis recorded in one of a trust's encounters (its first batch, labelled at ingest), and a CD4
    count and report that arrive later unlabelled: the screen withholds them by context at read time."""
    subject = {"reference": f"Patient/{person}"}
    first: list[dict[str, Any]] = [
        {"resourceType": "Condition", "id": "bulk-hiv", "subject": subject,
         "encounter": {"reference": f"Encounter/{encounter}"},
         "code": {"coding": [{"system": SNOMED, "code": "86406008"}]}},
        {"resourceType": "Observation", "id": "bulk-vl", "status": "final", "subject": subject,
         "code": {"coding": [{"system": LOINC, "code": "25836-8"}]}},
    ]  # fmt: skip
    label_sensitive(first)
    later: list[dict[str, Any]] = [
        {"resourceType": "Observation", "id": "bulk-cd4", "status": "final", "subject": subject,
         "encounter": {"reference": f"Encounter/{encounter}"},
         "code": {"coding": [{"system": LOINC, "code": "24467-3"}]}},
        {"resourceType": "DiagnosticReport", "id": "bulk-dr", "status": "final", "subject": subject,
         "code": {"coding": [{"system": LOINC, "code": "11502-2"}]}, "result": [{"reference": "Observation/bulk-vl"}]},
    ]  # fmt: skip
    return first, later


async def _build(store: Store, tmp: Path) -> None:
    async with synced_world(WORLD, store, tmp):
        pass

    def pick(tx: Tx) -> tuple[str, str]:
        # a trust's Patient who is part of a person, and one of that record's encounters
        row = tx.query(
            "SELECT r.compartment, r.res_id FROM resources r JOIN reference_alias a"
            " ON a.res_type = 'Patient' AND a.member_id = r.compartment AND a.canonical_id <> a.member_id"
            " WHERE r.res_type = 'Encounter' AND r.deleted = 0 ORDER BY r.res_id LIMIT 1"
        )
        return str(row[0][0]), str(row[0][1])

    person, encounter = await store.read(pick)
    first, later = _sensitive_records(person, encounter)
    for batch in (first, later):
        writes = [ResourceWrite(r["resourceType"], r["id"], orjson.dumps(r), "test", person) for r in batch]
        await store.write(lambda tx, w=writes: put_resources(tx, w))
    # the security world: an objector, a restricted person (redacted whereabouts), labelled records
    await store.write(lambda tx: put_resources(tx, world()))
    await store.write(lambda tx: add_objection(tx, OBJECTOR_NHS))


async def _oracle(view: View, access: AccessContext, resource_type: str) -> dict[str, tuple[bytes, str | None]]:
    """Per resource id: the body a single screened read serves, and its owner — for every resource of the type."""

    def run(tx: Tx) -> dict[str, tuple[bytes, str | None]]:
        screen = view._screen(tx, access)
        rows, _ = export_rows(tx, resource_type, at=1 << 62, limit=1 << 30)
        out: dict[str, tuple[bytes, str | None]] = {}
        for row in rows:
            resource = row.resource
            shown = screen.apply([resource]).resources
            if not shown or shown[0].body is None:
                continue
            if resource_type == "Patient":
                canon = canonical_ids(tx, "Patient", [resource.id]).get(resource.id, resource.id)
                if canon != resource.id or b'"replaced-by"' in shown[0].body:
                    continue  # a trust's record of a person (the export carries one Patient per person)
            composed = present_goldens(tx, shown, view.rules, lambda found: screen.apply(found).resources)
            served = person_centred(tx, composed)
            if served and served[0].body is not None:
                owner = resource.id if resource_type == "Patient" else resource.compartment
                out[resource.id] = (served[0].body, owner)
        return out

    return await view.store.read(run)


async def _exported(view: View, access: AccessContext, resource_type: str) -> dict[str, bytes]:
    sensitive = await view.bulk_sensitive(access, resource_type)
    at = await view.store.read(lambda tx: int(tx.query("SELECT t FROM store_clock")[0][0]))
    out: dict[str, bytes] = {}
    after: str | None = ""
    while after is not None:
        # small pages: the keyset continues across many of them
        items, after = await view.bulk_page(access, resource_type, at=at, sensitive=sensitive, after_id=after, limit=7)
        for item in items:
            assert item.resource.id not in out, "a resource written twice"
            assert item.resource.body is not None
            out[item.resource.id] = item.resource.body
    return out


def _leaks(folder: Path, allowed: dict[str, dict[str, tuple[bytes, str | None]]]) -> list[str]:
    """Lines of an export's files that the one-by-one screen would not serve as written; for a Provenance, one
    whose target is not a version the screen serves (named ``Provenance->Type/id``)."""
    found = []
    for path in sorted(folder.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            resource = orjson.loads(line)
            if resource["resourceType"] == "Provenance":
                (target,) = resource["target"]
                rtype, rid, _, version = target["reference"].split("/")
                served = allowed.get(rtype, {}).get(rid)
                if served is None or orjson.loads(served[0])["meta"]["versionId"] != version:
                    found.append(f"Provenance->{rtype}/{rid}")
                continue
            expected = allowed.get(resource["resourceType"], {}).get(resource["id"])
            if expected is None or orjson.loads(expected[0]) != resource:
                found.append(f"{resource['resourceType']}/{resource['id']}")
    return found


async def test_the_export_read_equals_the_one_screen_on_every_resource(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_store(store_url) as store:
        await _build(store, tmp_path)
        view = View(store)
        types = [t for t in await view.export_types() if t in registry().resource_types]
        oracle: dict[bool, dict[str, dict[str, tuple[bytes, str | None]]]] = {}
        for access in (PLAIN, GRANTED):
            expected_all = {}
            for resource_type in types:
                expected = await _oracle(view, access, resource_type)
                got = await _exported(view, access, resource_type)
                assert got == {k: body for k, (body, _) in expected.items()}, resource_type
                expected_all[resource_type] = expected
                # a Group's members, a few persons a read, through the patient compartment
                if resource_type in ("Organization", "Location", "Practitioner", "PractitionerRole", "Medication"):
                    continue
                persons = sorted({owner for _, owner in expected.values() if owner is not None})
                canon = await store.read(partial(canonical_ids, res_type="Patient", ids=persons))
                people = sorted({canon.get(p, p) for p in persons})
                members: dict[str, bytes] = {}
                at = await store.read(lambda tx: int(tx.query("SELECT t FROM store_clock")[0][0]))
                sensitive = await view.bulk_sensitive(access, resource_type)
                for start in range(0, len(people), 4):
                    chunk = people[start : start + 4]
                    for item in await view.bulk_members(access, resource_type, chunk, at=at, sensitive=sensitive):
                        assert item.resource.body is not None
                        if item.person in chunk:
                            members[item.resource.id] = item.resource.body
                owned = {k: body for k, (body, owner) in expected.items() if owner is not None}
                assert members == owned, resource_type
            oracle[access.allow_sensitive] = expected_all
        # the world has something to hide: the grant decides, and context across batches counts
        plain, granted = oracle[False], oracle[True]
        hidden_from_plain = (
            ("Condition", "bulk-hiv"), ("Observation", "bulk-vl"), ("Observation", "bulk-cd4"),
            ("DiagnosticReport", "bulk-dr"), ("Condition", "c-hiv"), ("Encounter", "e-sex"),
        )  # fmt: skip
        for rtype, rid in hidden_from_plain:
            assert rid in granted[rtype], (rtype, rid)
            assert rid not in plain[rtype], (rtype, rid)
        withheld = sum(len(granted[t]) - len(plain.get(t, {})) for t in granted)
        assert withheld > 6  # the trust encounter the diagnosis was recorded in, and what else was recorded there

        # adversarial: every line of a system export's files is one the screen serves, as it serves it
        out = tmp_path / "export"
        summary = await export_to_folder(view, PLAIN, ExportRequest(Level.SYSTEM), out, opt_out=NationalOptOut())
        assert sum(summary.counts.values()) > 1000
        assert summary.counts["Provenance"] == sum(len(v) for v in plain.values())  # one per served resource
        assert _leaks(out, plain) == []
        # … and the check catches a leak: with the sensitivity sets emptied, sensitive records reach the files
        monkeypatch.setattr(
            "bcconnect.view._view.sensitive_rows", lambda tx, rtype, visibility: SensitiveRows(frozenset(), frozenset())
        )
        broken = tmp_path / "broken"
        await export_to_folder(view, PLAIN, ExportRequest(Level.SYSTEM), broken, opt_out=NationalOptOut())
        leaked = set(_leaks(broken, plain))
        assert {"Condition/bulk-hiv", "Observation/bulk-cd4", "Encounter/e-sex"} <= leaked
        assert {"Provenance->Condition/bulk-hiv", "Provenance->Encounter/e-sex"} <= leaked
