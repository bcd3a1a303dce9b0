"""FHIR R4 Provenance, composed on read from what the store keeps with every version (never stored twice).

Each version of a served resource has one Provenance, ``Provenance/<type code>-<id>-<version>`` (stable: the
same data gives the same ids on every run; the type codes below never change), with one version of its own:

- ``target``: the resource's version (``Observation/<id>/_history/<n>``), ``recorded``: when the store
  recorded that version (the version's ``meta.lastUpdated``, the moment it was received and mapped);
- ``activity``: v3-DataOperation ``CREATE`` for version 1, ``UPDATE`` after;
- ``agent``: the trust as ``author`` (its Organization in the view, with its ODS code as identifier), and
  bcconnect as ``assembler`` (a contained Device carrying the engine's version);
- ``entity`` (role ``source``): the trust's source record, ``what.identifier`` = the trust's system and the
  record's key there (``meta.source`` splits into the two), and for a current version the version the trust
  gave the record (from the raw landing) in the :data:`SOURCE_VERSION_EXTENSION` extension;
- ``policy``: the mapping set and version that turned the record into FHIR
  (``https://bcconnect.nhs.uk/MappingSet/<set>|<version>``): the plan the transformation followed (PROV-O
  ``hadPlan``), which is what ``Provenance.policy`` carries. UK Core has no Provenance profile; the shape
  follows FHIR R4 and US Core's basic provenance (author organisation + transmitter/assembler).

A golden Patient (composed by the patient index) gets one Provenance per version with one ``source`` entity per
contributing source Patient the caller may see (each entity names its trust as ``author`` in
``entity.agent``), agent bcconnect as ``assembler`` and ``policy`` the identity rules' version.

A Provenance is screened exactly as its target: the caller must be allowed the Provenance type and see the
target version (objection, restriction, sensitivity, scopes); its ``meta.security`` carries the target's labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import orjson

from bcconnect import __version__
from bcconnect.fhir.constants import (
    BCCONNECT_BASE,
    MAPPING_TAG_SYSTEM,
    SOURCE_ORG_TAG_SYSTEM,
    source_system,
)
from bcconnect.store import StoredResource, Tx, current_ids_with_token, read_current

PROVENANCE: Final = "Provenance"
#: the parameters a Provenance search takes (what the CapabilityStatement lists)
SEARCH_PARAMS: Final = ("_id", "_lastUpdated", "agent", "patient", "recorded", "target")
#: the registry's Provenance parameters a composed Provenance cannot be searched by (refused; ignored if lenient)
NOT_OFFERED_ON_PROVENANCE: Final = frozenset(
    {
        "agent-role",
        "agent-type",
        "entity",
        "location",
        "signature-type",
        "when",
        "_tag",
        "_security",
        "_source",
        "_profile",
        "_sort",
        "_revinclude",
    }
)
INCLUDES: Final = ("Provenance:agent", "Provenance:patient", "Provenance:target")
#: the one reverse include other types offer from Provenance
REVINCLUDE: Final = "Provenance:target"

#: what the CapabilityStatement says of Provenance
PROVENANCE_DOC: Final = (
    "Composed on read, one per version of every served resource: Provenance/<type code>-<id>-<version>. target is "
    "the version, recorded when bcconnect received and stored it, agent the trust (author, its Organization and "
    "ODS code) and bcconnect (assembler, a contained Device), entity the trust's source record (role source, "
    "identifier = the trust's system and record key; the trust's version of it, when known, in the extension "
    "https://bcconnect.nhs.uk/StructureDefinition/source-record-version), policy the mapping set and version. "
    "A golden Patient's "
    "Provenance has one source entity per visible source Patient, each with its trust as entity.agent. Searches "
    "(target, patient, agent, recorded, _lastUpdated, _id) find the Provenance of current versions; _id, read "
    "and a versioned target (target=T/id/_history/n) reach every version's. Every search takes "
    "_revinclude=Provenance:target. $everything does not add "
    "Provenance (the operation may; ask with _revinclude). A Bulk Data $export carries the Provenance of the "
    "resources it exports (the default all-types export, or _type=Provenance). A Provenance is screened exactly "
    "as its target."
)
PARTICIPANT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
ENTITY_ROLE: Final = "source"
MAPPING_SET_POLICY: Final = BCCONNECT_BASE + "/MappingSet/"
IDENTITY_RULES_POLICY: Final = BCCONNECT_BASE + "/IdentityRules"
ENGINE_DEVICE: Final = "engine"
#: on a source entity: the version the trust gave the source record (its ``meta.versionId``, a message's version)
SOURCE_VERSION_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/source-record-version"

#: stable short codes of the served types in a Provenance id (a FHIR id is at most 64 characters: code, a
#: 36-character resource id and the version fit). Never change one: stored links to Provenance use them.
TYPE_CODES: Final[Mapping[str, str]] = {
    "AllergyIntolerance": "alg",
    "Appointment": "apt",
    "CarePlan": "cpl",
    "CareTeam": "ctm",
    "Composition": "cmp",
    "Condition": "con",
    "Device": "dev",
    "DiagnosticReport": "dgr",
    "DocumentReference": "doc",
    "Encounter": "enc",
    "EpisodeOfCare": "eoc",
    "Flag": "flg",
    "Goal": "gol",
    "ImagingStudy": "img",
    "Immunization": "imm",
    "Location": "loc",
    "Medication": "med",
    "MedicationAdministration": "mad",
    "MedicationRequest": "mrq",
    "MedicationStatement": "mst",
    "Observation": "obs",
    "Organization": "org",
    "Patient": "pat",
    "Practitioner": "prc",
    "PractitionerRole": "prl",
    "Procedure": "pro",
    "RelatedPerson": "rlp",
    "ServiceRequest": "srq",
}
_TYPE_OF_CODE: Final = {code: rtype for rtype, code in TYPE_CODES.items()}


def provenance_id(resource_type: str, resource_id: str, version: int) -> str | None:
    """The id of the Provenance of one version (None for a type with no code, or an id too long for one)."""
    code = TYPE_CODES.get(resource_type)
    if code is None:
        return None
    found = f"{code}-{resource_id}-{version}"
    return found if len(found) <= 64 else None


def parse_provenance_id(provenance: str) -> tuple[str, str, int] | None:
    """``(type, id, version)`` of the version a Provenance id names, or None when it names none."""
    code, _, rest = provenance.partition("-")
    resource_id, _, version = rest.rpartition("-")
    rtype = _TYPE_OF_CODE.get(code)
    if rtype is None or not resource_id or not version.isdigit() or len(version) > 18 or version.startswith("0"):
        return None
    return rtype, resource_id, int(version)


def _tags(meta: Mapping[str, Any], system: str) -> list[str]:
    return [
        str(t["code"])
        for t in meta.get("tag") or ()
        if isinstance(t, dict) and t.get("system") == system and t.get("code")
    ]


def served_meta(resource: StoredResource) -> Mapping[str, Any]:
    """A served resource's ``meta`` (parsed once by a caller that needs several things from it)."""
    if resource.body is None:
        return {}
    meta = orjson.loads(resource.body).get("meta")
    return meta if isinstance(meta, dict) else {}


def trust_codes(resource: StoredResource, meta: Mapping[str, Any] | None = None) -> list[str]:
    """The ODS codes of the trusts a served resource came from (one, or more for a fact two trusts sent)."""
    if resource.body is None:
        return []
    return _tags(served_meta(resource) if meta is None else meta, SOURCE_ORG_TAG_SYSTEM)


def trust_organizations(tx: Tx, codes: Iterable[str]) -> dict[str, str]:
    """ODS code → the id of the trust's Organization in the view (the trust's own record of itself first,
    then the smallest id), for the codes the view holds an Organization of."""
    out: dict[str, str] = {}
    for code in sorted(set(codes)):
        ids = sorted(current_ids_with_token(tx, "Organization", "identifier", [(SOURCE_ORG_TAG_SYSTEM, code)]))
        own = []
        for oid in ids:
            found = read_current(tx, "Organization", oid)
            alive = found is not None and found.body is not None and not found.deleted
            if (
                alive
                and found
                and code in _tags(orjson.loads(found.body or b"{}").get("meta") or {}, SOURCE_ORG_TAG_SYSTEM)
            ):
                own.append(oid)
        if own or ids:
            out[code] = (own or ids)[0]
    return out


def _trust_agent(code: str, organisations: Mapping[str, str], kind: str) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": {"system": SOURCE_ORG_TAG_SYSTEM, "value": code}, "display": code}
    if code in organisations:
        who = {"reference": f"Organization/{organisations[code]}", **who}
    return {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": kind}]}, "who": who}


def _engine() -> tuple[dict[str, Any], dict[str, Any]]:
    device = {
        "resourceType": "Device",
        "id": ENGINE_DEVICE,
        "deviceName": [{"name": "bcconnect", "type": "manufacturer-name"}],
        "version": [{"value": __version__}],
    }
    agent = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler"}]},
        "who": {"reference": f"#{ENGINE_DEVICE}", "display": "bcconnect integration engine"},
    }
    return device, agent


def _split_source(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(trust system, record key)`` from ``meta.source`` (``<trust system>/<record key>``)."""
    source = meta.get("source")
    if not isinstance(source, str):
        return None
    for code in _tags(meta, SOURCE_ORG_TAG_SYSTEM):
        system = source_system(code)
        if source.startswith(system + "/"):
            return system, source[len(system) + 1 :]
    return None


def source_record_key(resource: StoredResource, meta: Mapping[str, Any] | None = None) -> str | None:
    """The key of the source record at its trust that ``resource`` was mapped from (None when not known)."""
    if resource.body is None or b'"source"' not in resource.body:
        return None
    split = _split_source(served_meta(resource) if meta is None else meta)
    return split[1] if split else None


def _source_entity(meta: Mapping[str, Any], version: str | None) -> list[dict[str, Any]]:
    """The trust's source record, named by the trust's system and the record's key there (and the version the
    trust gave it, when known)."""
    source = meta.get("source")
    if not isinstance(source, str) or not source:
        return []
    split = _split_source(meta)
    if split is None:
        return [{"role": ENTITY_ROLE, "what": {"display": source}}]
    entity: dict[str, Any] = {
        "role": ENTITY_ROLE,
        "what": {"identifier": {"system": split[0], "value": split[1]}, "display": source},
    }
    if version is not None:
        entity["extension"] = [{"url": SOURCE_VERSION_EXTENSION, "valueString": version}]
    return [entity]


def compose(
    target: StoredResource,
    organisations: Mapping[str, str],
    *,
    sources: Sequence[StoredResource] | None = None,
    rules_version: str | None = None,
    current: bool = True,
    source_version: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> StoredResource | None:
    """The Provenance of ``target`` (one screened, served version); ``sources``: for a golden Patient, the
    current source Patients the caller may see (``None`` for every other resource). An earlier version of a
    golden Patient names its sources without a version (which versions it was composed from is not kept)."""
    pid = provenance_id(target.resource_type, target.id, target.version)
    if pid is None or target.body is None:
        return None
    if meta is None:
        meta = served_meta(target)
    device, engine = _engine()
    out: dict[str, Any] = {
        "resourceType": PROVENANCE,
        "id": pid,
        "meta": {"versionId": "1", "lastUpdated": target.last_updated},
    }
    if meta.get("security"):
        out["meta"]["security"] = meta["security"]  # as sensitive as what it describes
    out["contained"] = [device]
    out["target"] = [{"reference": f"{target.resource_type}/{target.id}/_history/{target.version}"}]
    out["recorded"] = target.last_updated
    operation = "CREATE" if target.version == 1 else "UPDATE"
    out["activity"] = {"coding": [{"system": DATA_OPERATION, "code": operation}]}
    if sources is not None:
        out["policy"] = [f"{IDENTITY_RULES_POLICY}|{rules_version}"] if rules_version else []
        out["agent"] = [engine]
        entities = []
        for src in sources:
            codes = trust_codes(src)
            entity: dict[str, Any] = {
                "role": ENTITY_ROLE,
                "what": {"reference": f"Patient/{src.id}/_history/{src.version}" if current else f"Patient/{src.id}"},
            }
            if codes:
                entity["agent"] = [_trust_agent(code, organisations, "author") for code in codes]
            entities.append(entity)
        out["entity"] = entities
        if not out["policy"]:
            del out["policy"]
    else:
        codes = _tags(meta, SOURCE_ORG_TAG_SYSTEM)
        mappings = _tags(meta, MAPPING_TAG_SYSTEM)
        if mappings:
            out["policy"] = [f"{MAPPING_SET_POLICY}{m}" for m in mappings]
        out["agent"] = [*(_trust_agent(code, organisations, "author") for code in codes), engine]
        records = _source_entity(meta, source_version)
        if records:
            out["entity"] = records
    body = orjson.dumps(out)
    # the person the Provenance is about, for the audit trail (a Patient is its own compartment)
    owner = target.compartment or (target.id if target.resource_type == "Patient" else None)
    return StoredResource(PROVENANCE, pid, 1, target.last_updated, False, body, target.t, owner)
