"""The server pack and the look-ups its checks share (fetched once per run): the CapabilityStatement and a
sample record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bcconnect.conformance._catalogue_file import load_catalogue
from bcconnect.conformance._context import Context, require
from bcconnect.conformance._fhir import entries, nhs_numbers, search
from bcconnect.conformance._model import NotApplicable, Pack

#: the server pack: checks in server_capability, server_search and server_profile (catalogue: server.toml)
PACK = Pack(load_catalogue("server"))
#: how many Observation subjects the sample search looks at
_CANDIDATES = 8


async def _capability(ctx: Context) -> dict[str, Any]:
    answer = await ctx.get("metadata", auth=False)
    require(answer.status == 200, f"GET metadata answered HTTP {answer.status}, expected 200")
    body = answer.json()
    require(
        isinstance(body, dict) and body.get("resourceType") == "CapabilityStatement",
        "GET metadata did not answer a CapabilityStatement",
    )
    return body  # type: ignore[no-any-return]


async def capability(ctx: Context) -> dict[str, Any]:
    """The target's CapabilityStatement (fetched once, without credentials)."""
    return await ctx.shared("capability", _capability)


def server_rest(statement: dict[str, Any]) -> dict[str, Any]:
    """The ``rest`` entry in server mode (empty when there is none)."""
    for rest in statement.get("rest") or []:
        if rest.get("mode") == "server":
            return rest  # type: ignore[no-any-return]
    return {}


def listed_types(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Resource type → its ``rest.resource`` entry."""
    return {r["type"]: r for r in server_rest(statement).get("resource") or [] if isinstance(r, dict) and "type" in r}


def interactions(entry: dict[str, Any]) -> set[str]:
    """The interaction codes a ``rest.resource`` entry lists."""
    return {i.get("code") for i in entry.get("interaction") or []}


def search_params(entry: dict[str, Any]) -> dict[str, str]:
    """Search parameter name → type, as listed."""
    return {p["name"]: p.get("type", "") for p in entry.get("searchParam") or [] if isinstance(p, dict) and "name" in p}


def operations(statement: dict[str, Any], resource_type: str) -> set[str]:
    """Operation names listed for a type (and at the system level)."""
    names = {o.get("name", "").lstrip("$") for o in server_rest(statement).get("operation") or []}
    entry = listed_types(statement).get(resource_type, {})
    names |= {o.get("name", "").lstrip("$") for o in entry.get("operation") or []}
    return names


async def require_type(ctx: Context, resource_type: str, interaction: str = "search-type") -> dict[str, Any]:
    """The type's entry; :class:`NotApplicable` when the server does not list the type and interaction."""
    entry = listed_types(await capability(ctx)).get(resource_type)
    if entry is None or interaction not in interactions(entry):
        raise NotApplicable(f"the CapabilityStatement does not list {interaction} for {resource_type}")
    return entry


async def require_param(ctx: Context, resource_type: str, name: str) -> None:
    """:class:`NotApplicable` unless the type lists the search parameter ``name``."""
    entry = await require_type(ctx, resource_type)
    if name not in search_params(entry):
        raise NotApplicable(f"the CapabilityStatement lists no {name} search parameter for {resource_type}")


@dataclass(frozen=True, slots=True)
class Sample:
    """Test data found on the target.

    ``patient``: a Patient found by search, with a family name, birth date and gender (an NHS number when any
    has one). ``observation``: an Observation whose subject is a Patient, and ``subject_id`` that Patient's id
    (the reference, chain, include and paging checks work from it).
    """

    patient: dict[str, Any]
    observation: dict[str, Any] | None
    subject_id: str | None

    @property
    def patient_id(self) -> str:
        return str(self.patient["id"])

    @property
    def nhs_number(self) -> str | None:
        found = nhs_numbers(self.patient)
        return str(found[0]["value"]) if found else None

    @property
    def family(self) -> str | None:
        for name in self.patient.get("name") or []:
            if name.get("family"):
                return str(name["family"])
        return None


def _usable(patient: dict[str, Any]) -> bool:
    has_family = any(n.get("family") for n in patient.get("name") or [])
    return bool(patient.get("id") and has_family and patient.get("birthDate") and patient.get("gender"))


async def _sample(ctx: Context) -> Sample:
    types = listed_types(await capability(ctx))
    if "Patient" not in types:
        raise NotApplicable("the CapabilityStatement lists no Patient type")
    bundle = await search(ctx, "Patient", [("_count", "50")])
    patients = [p for p in entries(bundle) if _usable(p)]
    if not patients:
        raise NotApplicable("no Patient with a family name, birth date and gender was found to test with")
    with_nhs = [p for p in patients if nhs_numbers(p)]
    observation, subject_id = None, None
    if "Observation" in types:
        # prefer a subject with an NHS number and at least three Observations (chains and paging need them)
        by_subject: dict[str, dict[str, Any]] = {}
        for candidate in entries(await search(ctx, "Observation", [("_count", "100")])):
            reference = str((candidate.get("subject") or {}).get("reference") or "")
            if reference.startswith("Patient/") or "/Patient/" in reference:
                by_subject.setdefault(reference.rsplit("/", 1)[-1], candidate)
        for pid, candidate in list(by_subject.items())[:_CANDIDATES]:
            if observation is None:
                observation, subject_id = candidate, pid
            answer = await ctx.get(f"Patient/{pid}")
            if answer.status != 200 or not nhs_numbers(answer.json()):
                continue
            listed = entries(await search(ctx, "Observation", [("subject", f"Patient/{pid}"), ("_count", "10")]))
            if len(listed) >= 3:
                observation, subject_id = candidate, pid
                break
    return Sample((with_nhs or patients)[0], observation, subject_id)


async def sample(ctx: Context) -> Sample:
    """The sample record the search checks use (found once per run)."""
    found = await ctx.shared("sample", _sample)
    ctx.note(f"sample Patient/{found.patient_id}")
    return found


def sample_observation(found: Sample) -> tuple[dict[str, Any], str]:
    """The sample Observation and its subject Patient's id, or :class:`NotApplicable`."""
    if found.observation is None or found.subject_id is None:
        raise NotApplicable("the target has no Observation of a Patient to test with")
    return found.observation, found.subject_id
