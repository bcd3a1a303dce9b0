"""A FHIR R4 source in a shape the sandboxes never produce: US Core, as a US vendor sends it — no NHS numbers,
its own identifier systems (MRN, SSN, NPI), US Core extensions, RxNorm, CVX and ICD-10-CM codes — served by a
real loopback HTTP server under a FHIR base that is not ``/fhir/R4``, with SMART discovery, a
CapabilityStatement, ``_lastUpdated`` paging, ``_summary=count`` and a per-type fault switch.

All data is synthetic and deterministic (``us_core_population(n)``); nothing is copied from any generator.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
import orjson
import uvicorn

Json = dict[str, Any]

FHIR_PATH = "/api/fhir"
MRN_SYSTEM = "http://hospital.example.org/mrn"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
#: types the server offers that the generic set does not map (reported "offered, not mapped")
UNMAPPED_TYPES = ("Provenance",)

_GIVEN = ("Avery", "Jordan", "Reese", "Casey", "Morgan", "Quinn", "Rowan", "Skyler", "Emerson", "Hayden")
_FAMILY = ("Okonkwo-Hale", "Vanderlinden", "Marchetti", "Szymanski", "Castellanos", "Whitcombe", "Abernathy")
_CITIES = (("Springfield", "IL", "62704"), ("Dayton", "OH", "45402"), ("Fresno", "CA", "93721"))


def _ref(rtype: str, rid: str) -> Json:
    return {"reference": f"{rtype}/{rid}"}


def _cc(system: str, code: str, display: str) -> Json:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


@dataclass
class UsCoreData:
    """The source's resources by type, in the order they were last updated."""

    by_type: dict[str, list[Json]] = field(default_factory=dict)

    def add(self, resource: Json) -> None:
        self.by_type.setdefault(resource["resourceType"], []).append(resource)

    def of_patient(self, patient_id: str) -> list[Json]:
        """Every resource whose subject/patient is this Patient (and the Patient itself)."""
        out: list[Json] = []
        for resources in self.by_type.values():
            for r in resources:
                if (r["resourceType"] == "Patient" and r["id"] == patient_id) or any(
                    r.get(k) == _ref("Patient", patient_id) for k in ("subject", "patient")
                ):
                    out.append(r)
        return out


def us_core_population(persons: int, *, start: datetime | None = None) -> UsCoreData:
    """``persons`` patients, each with one resource of every clinical type a shared care record shows."""
    clock = start or datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    data = UsCoreData()
    tick = 0

    def stamp(resource: Json) -> Json:
        nonlocal tick
        tick += 1
        when = clock + timedelta(seconds=tick)
        resource["meta"] = {
            "versionId": "1",
            "lastUpdated": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        data.add(resource)
        return resource

    stamp(
        {
            "resourceType": "Organization",
            "id": "org-1",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.7", "value": "10D0000001"}],
            "name": "Example Valley Medical Center",
            "active": True,
        }
    )
    stamp(
        {
            "resourceType": "Location",
            "id": "loc-1",
            "status": "active",
            "name": "EVMC Imaging",
            "managingOrganization": _ref("Organization", "org-1"),
        }
    )
    stamp(
        {
            "resourceType": "Practitioner",
            "id": "pract-1",
            "identifier": [{"system": NPI_SYSTEM, "value": "9941339108"}],
            "name": [{"family": "Nakamura", "given": ["Lena"], "prefix": ["Dr."]}],
        }
    )
    stamp(
        {
            "resourceType": "PractitionerRole",
            "id": "role-1",
            "practitioner": _ref("Practitioner", "pract-1"),
            "organization": _ref("Organization", "org-1"),
            "location": [_ref("Location", "loc-1")],
            "code": [_cc("http://nucc.org/provider-taxonomy", "208D00000X", "General Practice")],
        }
    )
    for n in range(persons):
        pid = f"pt-{n + 1}"
        city, state, zipcode = _CITIES[n % len(_CITIES)]
        stamp(
            {
                "resourceType": "Patient",
                "id": pid,
                "meta": {},
                "extension": [
                    {
                        "url": US_CORE + "us-core-race",
                        "extension": [
                            {
                                "url": "ombCategory",
                                "valueCoding": {
                                    "system": "urn:oid:2.16.840.1.113883.6.238",
                                    "code": "2106-3",
                                    "display": "White",
                                },
                            },
                            {"url": "text", "valueString": "White"},
                        ],
                    },
                    {"url": US_CORE + "us-core-birthsex", "valueCode": "F" if n % 2 else "M"},
                ],
                "identifier": [
                    {
                        "type": _cc("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number"),
                        "system": MRN_SYSTEM,
                        "value": f"MRN{70000 + n}",
                    },
                    {
                        "type": _cc("http://terminology.hl7.org/CodeSystem/v2-0203", "SS", "Social Security Number"),
                        "system": SSN_SYSTEM,
                        "value": f"999-{40 + n:02d}-{1000 + n}",
                    },
                    {"value": f"LEGACY-{n}"},  # no system: the source's old chart number
                ],
                "active": True,
                "name": [
                    {"use": "official", "family": _FAMILY[n % len(_FAMILY)], "given": [_GIVEN[n % len(_GIVEN)], "T."]}
                ],
                "telecom": [{"system": "phone", "value": f"555-01{n:02d}", "use": "home"}],
                "gender": "female" if n % 2 else "male",
                "birthDate": f"19{50 + n % 40:02d}-0{1 + n % 9}-1{n % 9}",
                "address": [
                    {
                        "line": [f"{100 + n} Maple Street"],
                        "city": city,
                        "state": state,
                        "postalCode": zipcode,
                        "country": "US",
                    }
                ],
                "managingOrganization": _ref("Organization", "org-1"),
            }
        )
        enc = stamp(
            {
                "resourceType": "Encounter",
                "id": f"enc-{n}",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "type": [_cc(SNOMED, "185349003", "Encounter for check up")],
                "subject": _ref("Patient", pid),
                "participant": [{"individual": _ref("Practitioner", "pract-1")}],
                "period": {"start": "2026-09-01T10:00:00Z", "end": "2026-09-01T10:30:00Z"},
                "serviceProvider": _ref("Organization", "org-1"),
            }
        )
        cond = stamp(
            {
                "resourceType": "Condition",
                "id": f"cond-{n}",
                "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
                "category": [
                    _cc("http://hl7.org/fhir/us/core/CodeSystem/condition-category", "health-concern", "Health Concern")
                ],
                "code": {
                    "coding": [
                        {
                            "system": ICD10CM,
                            "code": "E11.9",
                            "display": "Type 2 diabetes mellitus without complications",
                        },
                        {"system": SNOMED, "code": "44054006", "display": "Diabetes mellitus type 2"},
                    ]
                },
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", enc["id"]),
                "onsetDateTime": "2020-05-01",
            }
        )
        hba1c = stamp(
            {
                "resourceType": "Observation",
                "id": f"obs-a1c-{n}",
                "status": "final",
                "category": [
                    _cc("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")
                ],
                "code": _cc(LOINC, "4548-4", "Hemoglobin A1c"),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", enc["id"]),
                "effectiveDateTime": "2026-09-01T10:05:00Z",
                "valueQuantity": {
                    "value": 7.1 + n / 10,
                    "unit": "%",
                    "system": "http://unitsofmeasure.org",
                    "code": "%",
                },
            }
        )
        panel = stamp(
            {
                "resourceType": "Observation",
                "id": f"obs-panel-{n}",
                "status": "final",
                "code": _cc(LOINC, "24323-8", "Comprehensive metabolic panel"),
                "subject": _ref("Patient", pid),
                "effectiveDateTime": "2026-09-01T10:05:00Z",
                "hasMember": [_ref("Observation", hba1c["id"])],
            }
        )
        stamp(
            {
                "resourceType": "DiagnosticReport",
                "id": f"dr-{n}",
                "status": "final",
                "code": _cc(LOINC, "24323-8", "Comprehensive metabolic panel"),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", enc["id"]),
                "effectiveDateTime": "2026-09-01T10:05:00Z",
                "result": [_ref("Observation", panel["id"])],
                "presentedForm": [{"contentType": "text/plain", "data": "UmVzdWx0cyB3aXRoaW4gdGFyZ2V0"}],
            }
        )
        sr = stamp(
            {
                "resourceType": "ServiceRequest",
                "id": f"sr-{n}",
                "status": "completed",
                "intent": "order",
                "code": _cc(SNOMED, "241615005", "Magnetic resonance imaging of knee"),
                "subject": _ref("Patient", pid),
                "reasonReference": [_ref("Condition", cond["id"])],
                "requester": _ref("Practitioner", "pract-1"),
            }
        )
        stamp(
            {
                "resourceType": "Procedure",
                "id": f"proc-{n}",
                "status": "completed",
                "code": _cc(SNOMED, "241615005", "Magnetic resonance imaging of knee"),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", enc["id"]),
                "basedOn": [_ref("ServiceRequest", sr["id"])],
                "reasonReference": [_ref("Condition", cond["id"])],
                "performedDateTime": "2026-09-02T08:00:00Z",
            }
        )
        mr = stamp(
            {
                "resourceType": "MedicationRequest",
                "id": f"mr-{n}",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": _cc(
                    RXNORM, "860975", "metformin hydrochloride 500 MG Extended Release Oral Tablet"
                ),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", enc["id"]),
                "authoredOn": "2026-09-01",
                "requester": _ref("Practitioner", "pract-1"),
                "reasonReference": [_ref("Condition", cond["id"])],
                "dosageInstruction": [{"text": "500 mg once daily with evening meal"}],
            }
        )
        stamp(
            {
                "resourceType": "MedicationStatement",
                "id": f"ms-{n}",
                "status": "active",
                "medicationCodeableConcept": _cc(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
                "subject": _ref("Patient", pid),
                "effectiveDateTime": "2026-01-01",
            }
        )
        stamp(
            {
                "resourceType": "MedicationAdministration",
                "id": f"ma-{n}",
                "status": "completed",
                "medicationCodeableConcept": _cc(
                    RXNORM, "860975", "metformin hydrochloride 500 MG Extended Release Oral Tablet"
                ),
                "subject": _ref("Patient", pid),
                "request": _ref("MedicationRequest", mr["id"]),
                "effectiveDateTime": "2026-09-01T18:00:00Z",
            }
        )
        stamp(
            {
                "resourceType": "Immunization",
                "id": f"imm-{n}",
                "status": "completed",
                "vaccineCode": _cc(CVX, "140", "Influenza, seasonal, injectable, preservative free"),
                "patient": _ref("Patient", pid),
                "encounter": _ref("Encounter", enc["id"]),
                "occurrenceDateTime": "2026-09-01T10:20:00Z",
                "primarySource": True,
                "location": _ref("Location", "loc-1"),
            }
        )
        stamp(
            {
                "resourceType": "AllergyIntolerance",
                "id": f"allergy-{n}",
                "clinicalStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"
                ),
                "verificationStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"
                ),
                "code": _cc(RXNORM, "7980", "Penicillin G"),
                "patient": _ref("Patient", pid),
            }
        )
        goal = stamp(
            {
                "resourceType": "Goal",
                "id": f"goal-{n}",
                "lifecycleStatus": "active",
                "description": {"text": "HbA1c below 7%"},
                "subject": _ref("Patient", pid),
                "addresses": [_ref("Condition", cond["id"])],
            }
        )
        team = stamp(
            {
                "resourceType": "CareTeam",
                "id": f"team-{n}",
                "status": "active",
                "subject": _ref("Patient", pid),
                "participant": [{"member": _ref("Practitioner", "pract-1")}, {"member": _ref("Organization", "org-1")}],
            }
        )
        stamp(
            {
                "resourceType": "CarePlan",
                "id": f"plan-{n}",
                "status": "active",
                "intent": "plan",
                "category": [
                    _cc(
                        "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan", "Assessment and Plan"
                    )
                ],
                "subject": _ref("Patient", pid),
                "addresses": [_ref("Condition", cond["id"])],
                "careTeam": [_ref("CareTeam", team["id"])],
                "goal": [_ref("Goal", goal["id"])],
            }
        )
        stamp(
            {
                "resourceType": "ImagingStudy",
                "id": f"img-{n}",
                "status": "available",
                "subject": _ref("Patient", pid),
                "basedOn": [_ref("ServiceRequest", sr["id"])],
                "location": _ref("Location", "loc-1"),
                "numberOfSeries": 1,
                "series": [
                    {
                        "uid": f"1.2.840.99999.{n}.1",
                        "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"},
                        "performer": [{"actor": _ref("Practitioner", "pract-1")}],
                    }
                ],
            }
        )
        stamp(
            {
                "resourceType": "Device",
                "id": f"device-{n}",
                "udiCarrier": [{"deviceIdentifier": f"0888{n:04d}", "carrierHRF": f"(01)0888{n:04d}"}],
                "status": "active",
                "type": _cc(SNOMED, "337414009", "Blood glucose meter"),
                "patient": _ref("Patient", pid),
            }
        )
        stamp(
            {
                "resourceType": "Flag",
                "id": f"flag-{n}",
                "status": "active",
                "code": {"text": "Needs interpreter (Spanish)"},
                "subject": _ref("Patient", pid),
            }
        )
        stamp(
            {
                "resourceType": "RelatedPerson",
                "id": f"rp-{n}",
                "patient": _ref("Patient", pid),
                "relationship": [_cc("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "SPS", "spouse")],
                "name": [{"family": _FAMILY[(n + 3) % len(_FAMILY)], "given": ["Sam"]}],
            }
        )
        stamp(
            {
                "resourceType": "DocumentReference",
                "id": f"doc-{n}",
                "status": "current",
                "type": _cc(LOINC, "34117-2", "History and physical note"),
                "subject": _ref("Patient", pid),
                "author": [_ref("Practitioner", "pract-1")],
                "content": [
                    {
                        "attachment": {
                            "contentType": "text/plain",
                            "data": "UGF0aWVudCBzZWVuIGZvciBjaGVjayB1cA==",
                            "url": f"Binary/note-{n}",
                            "title": "H&P",
                        }
                    }
                ],
                "context": {"encounter": [_ref("Encounter", enc["id"])]},
            }
        )
        stamp(
            {
                "resourceType": "Composition",
                "id": f"comp-{n}",
                "status": "final",
                "type": _cc(LOINC, "11503-0", "Medical records"),
                "subject": _ref("Patient", pid),
                "date": "2026-09-01T11:00:00Z",
                "author": [_ref("Practitioner", "pract-1")],
                "title": "Visit summary",
                "section": [{"title": "Problems", "entry": [_ref("Condition", cond["id"])]}],
            }
        )
        stamp(
            {
                "resourceType": "Provenance",
                "id": f"prov-{n}",
                "target": [_ref("Encounter", enc["id"])],
                "recorded": "2026-09-01T11:00:00Z",
                "agent": [{"who": _ref("Practitioner", "pract-1")}],
            }
        )
    return data


@dataclass
class UsCoreServer:
    """Serves a :class:`UsCoreData` over HTTP as a FHIR R4 server would (read-only, bearer tokens)."""

    data: UsCoreData
    base_url: str = ""
    #: resource types that answer HTTP 500 to every search (a persistent fault)
    broken: set[str] = field(default_factory=set)
    client_id: str = "bcconnect"
    client_secret: str = "us-core-secret"
    requests: list[str] = field(default_factory=list)

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}{FHIR_PATH}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode())
        self.requests.append(f"{scope['method']} {path}?{scope.get('query_string', b'').decode()}")
        status, answer = self._answer(scope, path, query, body)
        payload = orjson.dumps(answer)
        headers = [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _answer(self, scope: Any, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Json]:
        if path == "/connect/token" and scope["method"] == "POST":
            form = parse_qs(body.decode())
            if form.get("client_secret") != [self.client_secret]:
                return 401, {"error": "invalid_client"}
            return 200, {"access_token": "us-core-token", "token_type": "Bearer", "expires_in": 3600}
        if path == f"{FHIR_PATH}/.well-known/smart-configuration":
            return 200, {
                "token_endpoint": f"{self.base_url}/connect/token",
                "grant_types_supported": ["client_credentials"],
            }
        if path == f"{FHIR_PATH}/metadata":
            return 200, self._capabilities()
        headers = dict(scope.get("headers") or ())
        if headers.get(b"authorization") != b"Bearer us-core-token":
            return 401, _outcome("login", "bearer token required")
        parts = path[len(FHIR_PATH) :].strip("/").split("/")
        rtype = parts[0]
        if rtype not in self.data.by_type or not path.startswith(FHIR_PATH):
            return 404, _outcome("not-supported", f"{rtype} is not served")
        if rtype in self.broken:
            return 500, _outcome("exception", "database timeout")
        if len(parts) == 2 and parts[1] == "_history":
            return 200, {"resourceType": "Bundle", "type": "history", "entry": []}
        if len(parts) != 1:
            return 404, _outcome("not-found", path)
        return 200, self._search(rtype, query)

    def _search(self, rtype: str, query: dict[str, list[str]]) -> Json:
        resources = sorted(self.data.by_type[rtype], key=lambda r: r["meta"]["lastUpdated"])
        for bound in query.get("_lastUpdated", []):
            if bound.startswith("ge"):
                resources = [r for r in resources if r["meta"]["lastUpdated"] >= bound[2:]]
        if query.get("_summary") == ["count"]:
            return {"resourceType": "Bundle", "type": "searchset", "total": len(resources)}
        count = int(query.get("_count", ["50"])[0])
        offset = int(query.get("_offset", ["0"])[0])
        page = resources[offset : offset + count]
        bundle: Json = {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": "2026-11-30T00:00:00.000Z"},
            "entry": [
                {"fullUrl": f"{self.fhir_base}/{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in page
            ],
        }
        if offset + count < len(resources):
            rest = {k: v[0] for k, v in query.items()}
            rest["_offset"] = str(offset + count)
            bundle["link"] = [{"relation": "next", "url": f"{self.fhir_base}/{rtype}?{urlencode(rest)}"}]
        return bundle

    def _capabilities(self) -> Json:
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": rtype,
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": [
                                {"name": "_lastUpdated", "type": "date"},
                                {"name": "patient", "type": "reference"},
                            ],
                        }
                        for rtype in sorted(self.data.by_type)
                    ],
                }
            ],
        }


def _outcome(code: str, text: str) -> Json:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


class _QuietServer(uvicorn.Server):
    """uvicorn without taking over the process's signals (it runs inside the test's event loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: UsCoreServer) -> AsyncIterator[UsCoreServer]:
    """Serve ``app`` on a free loopback port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    app.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _QuietServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes readiness only as a flag
                await anyio.sleep(0.01)
        try:
            yield app
        finally:
            server.should_exit = True
