"""A small shared care record with something to hide, and the secured endpoint over it, for the adversarial tests.

- ``p1`` ordinary (GP ``gp1``), with an ordinary Condition, Observations and an Encounter at ``org-acute``;
- ``p2`` objects (by NHS number): six coded Conditions, Encounters at ``org-objector-only``, Observations;
- ``p3`` restricted (v3-Confidentiality R): address, phone, email, GP ``gp-secret``, an Encounter at
  ``loc-secret``;
- sensitive records of ``p1``: a sexual-health (SEX) Encounter at ``org-sexual-health`` and an HIV Condition.

Each part can be left out (``parts``) so a test can compare the world with a hidden fact against the world
without it: if an answer differs, the hidden fact leaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bcconnect.api import create_app
from bcconnect.api._security import security_hooks
from bcconnect.config import AuthSettings, SecuritySettings, Settings
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, V3_ACT_CODE_SYSTEM, V3_CONFIDENTIALITY_SYSTEM
from bcconnect.security import LocalIssuer, SecurityGate, add_objection, ensure_local_issuer
from bcconnect.store import ResourceWrite, Store, open_store, put_resources
from bcconnect.view import View

SNOMED = "http://snomed.info/sct"
ORDINARY_NHS, OBJECTOR_NHS, RESTRICTED_NHS, UNKNOWN_NHS = "9990000018", "9990000026", "9990000034", "9990000042"
#: the objector's six conditions (SNOMED codes an attacker would probe)
OBJECTOR_CODES = ("44054006", "38341003", "195967001", "13645005", "35489007", "73211009")
RESTRICTED_POSTCODE = "WV10 9ZZ"
RESTRICTED_CITY = "Secrettown"
RESTRICTED_PHONE = "07700900123"
SECRET_GP_ODS = "Y99999"
ALL_PARTS = frozenset({"objector", "restricted-hidden", "sensitive"})


def write(body: dict[str, Any], compartment: str | None = None) -> ResourceWrite:
    """A ResourceWrite of ``body`` (source "test")."""
    return ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), "test", compartment)


def _patient(pid: str, family: str, nhs: str, **extra: Any) -> ResourceWrite:
    body = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "name": [{"family": family, "given": ["Alex"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
        **extra,
    }
    return write(body, pid)


def _condition(cid: str, pid: str, code: str, **extra: Any) -> ResourceWrite:
    body = {
        "resourceType": "Condition",
        "id": cid,
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "recordedDate": "2024-03-01",
        **extra,
    }
    return write(body, pid)


def _encounter(eid: str, pid: str, org: str, **extra: Any) -> ResourceWrite:
    body = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": f"Organization/{org}"},
        "period": {"start": "2024-02-01T10:00:00Z", "end": "2024-02-01T11:00:00Z"},
        **extra,
    }
    return write(body, pid)


def _observation(oid: str, pid: str, day: int) -> ResourceWrite:
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"2024-01-{day:02d}T10:00:00Z",
        "valueQuantity": {"value": 5 + day, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    }
    return write(body, pid)


def _org(oid: str, name: str, ods: str) -> ResourceWrite:
    return write(
        {
            "resourceType": "Organization",
            "id": oid,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}],
            "name": name,
        }
    )


def world(parts: Iterable[str] = ALL_PARTS) -> list[ResourceWrite]:
    """The record with the chosen hidden parts (see the module docstring)."""
    chosen = set(parts)
    out = [
        _org("gp1", "The Surgery", "M00001"),
        _org("gp-secret", "The Secret Surgery", SECRET_GP_ODS),
        _org("org-acute", "Acute Trust", "RL4"),
        _org("org-objector-only", "Objector's Clinic", "RXX"),
        _org("org-sexual-health", "Sexual Health Clinic", "RYY"),
        write({"resourceType": "Location", "id": "loc-secret", "name": "Refuge Annex"}),
        _patient("p1", "Ordinary", ORDINARY_NHS, generalPractitioner=[{"reference": "Organization/gp1"}]),
        _condition("c1", "p1", "38341003"),
        _encounter("e1", "p1", "org-acute"),
    ]
    out += [_observation(f"o1-{d}", "p1", d) for d in range(1, 4)]
    restricted: dict[str, Any] = {"meta": {"security": [{"system": V3_CONFIDENTIALITY_SYSTEM, "code": "R"}]}}
    if "restricted-hidden" in chosen:
        restricted |= {
            "address": [{"line": ["1 Hidden Lane"], "city": RESTRICTED_CITY, "postalCode": RESTRICTED_POSTCODE}],
            "telecom": [
                {"system": "phone", "value": RESTRICTED_PHONE},
                {"system": "email", "value": "hidden@example.org"},
            ],
            "generalPractitioner": [{"reference": "Organization/gp-secret"}],
        }
    out.append(_patient("p3", "Restricted", RESTRICTED_NHS, **restricted))
    location = (
        {"location": [{"location": {"reference": "Location/loc-secret"}}]} if "restricted-hidden" in chosen else {}
    )
    out.append(_encounter("e3", "p3", "org-acute", **location))
    if "objector" in chosen:
        out.append(_patient("p2", "Objectorfamily", OBJECTOR_NHS, address=[{"postalCode": "DY1 1AA"}]))
        out += [_condition(f"c2-{i}", "p2", code) for i, code in enumerate(OBJECTOR_CODES)]
        out += [_encounter(f"e2-{i}", "p2", "org-objector-only") for i in range(2)]
        out += [_observation(f"o2-{d}", "p2", d) for d in range(1, 4)]
    if "sensitive" in chosen:
        sex = {"meta": {"security": [{"system": V3_ACT_CODE_SYSTEM, "code": "SEX"}]}}
        out.append(_encounter("e-sex", "p1", "org-sexual-health", **sex))
        hiv = {"meta": {"security": [{"system": V3_ACT_CODE_SYSTEM, "code": "HIV"}]}}
        out.append(_condition("c-hiv", "p1", "86406008", **hiv))
    return out


@dataclass
class Endpoint:
    """A client of the secured endpoint, its store and the issuer its tokens come from."""

    client: httpx.AsyncClient
    store: Store
    issuer: LocalIssuer

    def token(self, scopes: str = "user/*.rs", **kw: Any) -> dict[str, str]:
        """Headers with a fresh token (keyword arguments go to LocalIssuer.issue)."""
        kw.setdefault("user", "912345678901")
        kw.setdefault("org", "RL4")
        return {"authorization": "Bearer " + self.issuer.issue(scopes=scopes, **kw)}


@asynccontextmanager
async def secured(
    store_url: str,
    data_dir: Path,
    *,
    parts: Iterable[str] = ALL_PARTS,
    records: Iterable[ResourceWrite] | None = None,
    default_count: int = 50,
    max_count: int = 200,
    **security: Any,
) -> AsyncIterator[Endpoint]:
    """The app with the security hooks over :func:`world` (or ``records`` instead), :data:`OBJECTOR_NHS`
    registered as objecting."""
    seeded = list(world(parts) if records is None else records)
    # attack-style tests send thousands of requests as one user: the per-user allowance is the rate-limit tests'
    # business, so it is out of the way unless a test sets it
    security.setdefault("user_rate_limit_per_second", 1_000_000.0)
    security.setdefault("user_rate_limit_burst", 1_000_000)
    issuer = ensure_local_issuer(data_dir)
    settings = Settings(
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)), security=SecuritySettings(**security), root=data_dir
    )
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, seeded))
        # the objection is registered in both worlds: an unknown NHS number in the register says nothing
        await store.write(lambda tx: add_objection(tx, OBJECTOR_NHS))
        gate = SecurityGate.from_settings(settings, store)
        authenticate, on_complete = security_hooks(gate)
        view = View(store, default_count=default_count, max_count=max_count, sensitivity=gate.policy)
        app = create_app(settings, view, authenticate=authenticate, on_request_complete=on_complete)
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4567))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/fhir") as client:
            yield Endpoint(client, store, issuer)


def entry_ids(response: httpx.Response) -> list[str]:
    """``Type/id`` of every entry (matches, includes and any outcome) in a Bundle response."""
    assert response.status_code == 200, response.text
    return [f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in response.json().get("entry", [])]


def total(response: httpx.Response) -> int | None:
    """Bundle.total of a search response."""
    assert response.status_code == 200, response.text
    value = response.json().get("total")
    return int(value) if value is not None else None
