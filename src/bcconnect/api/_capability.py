"""The CapabilityStatement: built from the router's interactions and the view's capabilities, never by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from bcconnect import __version__
from bcconnect.api._group_capability import GROUP_CAPABILITY
from bcconnect.api._router import OPERATIONS, TYPE_INTERACTIONS
from bcconnect.config import AuthSettings
from bcconnect.view import PERSON_MODEL_DOC, PROVENANCE_DOC, TypeCapability

_OPERATION_DEFINITIONS = {
    "everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "match": "http://hl7.org/fhir/OperationDefinition/Patient-match",
    # our own, served at OperationDefinition/<code>
    "triage-worklist": "https://bcconnect.nhs.uk/OperationDefinition/triage-worklist",
    "waiting-list": "https://bcconnect.nhs.uk/OperationDefinition/waiting-list",
}
#: FHIR Bulk Data (IG v2): system, Patient and Group ``$export``
_BULK_IG = "http://hl7.org/fhir/uv/bulkdata"
_EXPORT_DEFINITIONS = {
    None: f"{_BULK_IG}/OperationDefinition/export",
    "Patient": f"{_BULK_IG}/OperationDefinition/patient-export",
    "Group": f"{_BULK_IG}/OperationDefinition/group-export",
}
_AUDIT_PATIENT = "http://hl7.org/fhir/SearchParameter/AuditEvent-patient"
_COUNT = "http://hl7.org/fhir/SearchParameter/Resource-count"
_STARTED = datetime.now(UTC).isoformat(timespec="seconds")


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SMART_CAPABILITIES = (
    "launch-standalone",
    "client-public",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
)


def smart_configuration(base_url: str, auth: AuthSettings) -> bytes:
    """``[base]/.well-known/smart-configuration`` (SMART App Launch 2.0 discovery), from ``[auth]``."""
    document: dict[str, Any] = {
        "capabilities": list(SMART_CAPABILITIES),
        "scopes_supported": [
            "openid",
            "fhirUser",
            "launch/patient",
            "patient/*.rs",
            "user/*.rs",
            "system/*.rs",
            "user/AuditEvent.rs",
            "bcconnect/sensitive.read",
        ],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }
    if auth.issuers:
        document["issuer"] = auth.issuers[0].issuer
        if auth.issuers[0].jwks_url:
            document["jwks_uri"] = auth.issuers[0].jwks_url
    if auth.authorization_endpoint:
        document["authorization_endpoint"] = auth.authorization_endpoint
    if auth.token_endpoint:
        document["token_endpoint"] = auth.token_endpoint
    return orjson.dumps(document)


def smart_offered(auth: AuthSettings) -> bool:
    """Whether this deployment names an authorisation server to discover: SMART App Launch 2.0 makes the
    discovery document's ``token_endpoint`` REQUIRED, so without one the server does not claim SMART (it
    still accepts bearer JWTs from its trusted issuers)."""
    return bool(auth.token_endpoint)


def rest_security(auth: AuthSettings) -> dict[str, Any]:
    """``CapabilityStatement.rest.security``: SMART on FHIR (when offered), with the OAuth endpoints as
    ``oauth-uris``."""
    uris = [
        {"url": name, "valueUri": value}
        for name, value in (("authorize", auth.authorization_endpoint), ("token", auth.token_endpoint))
        if value
    ]
    if not smart_offered(auth):
        return {
            "cors": False,
            "description": (
                "Bearer JWTs (RS256/ES256) from a trusted issuer; SMART v1/v2 scopes; purpose of use must be direct"
                " care; sensitive records need bcconnect/sensitive.read; every access is audited. No authorisation"
                " server is configured ([auth] token_endpoint), so SMART App Launch discovery is not offered."
            ),
        }
    security: dict[str, Any] = {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see .well-known/smart-configuration)",
            }
        ],
        "description": (
            "Bearer JWTs (RS256/ES256) from a trusted issuer; SMART v1/v2 scopes; purpose of use must be direct care;"
            " sensitive records need bcconnect/sensitive.read; every access is audited."
        ),
    }
    if uris:
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return security


def capability_statement(
    base_url: str, types: tuple[TypeCapability, ...], auth: AuthSettings | None = None, *, bulk: bool = False
) -> bytes:
    """The server's CapabilityStatement as JSON bytes (``bulk``: the Bulk Data ``$export`` operations are served)."""
    resources = []
    for cap in types:
        entry: dict[str, object] = {
            "type": cap.resource_type,
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": False,
            "conditionalCreate": False,
            # reads honour If-None-Match and If-Modified-Since (_handlers._not_modified)
            "conditionalRead": "full-support",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchInclude": list(cap.includes),
            "searchRevInclude": list(cap.revincludes),
            "searchParam": [{"name": p.code, "definition": p.url, "type": p.type.value} for p in cap.search_params],
        }
        if cap.resource_type == "Patient":
            entry["documentation"] = PERSON_MODEL_DOC
        elif cap.resource_type == "Provenance":
            entry["documentation"] = PROVENANCE_DOC
        operations = [
            op
            for op in OPERATIONS.get(cap.resource_type, ())
            if op in cap.operations or op in ("triage-worklist", "waiting-list") or (op == "export" and bulk)
        ]
        if operations:
            entry["operation"] = [
                {"name": op, "definition": _EXPORT_DEFINITIONS[cap.resource_type] if op == "export"
                 else _OPERATION_DEFINITIONS[op]}
                for op in operations
            ]  # fmt: skip
        resources.append(entry)
    # the audit trail is searchable by patient only (see _handlers.audit_search), nothing else about it
    resources.append(
        {
            "type": "AuditEvent",
            "interaction": [{"code": "search-type"}],
            "searchParam": [
                {"name": "patient", "definition": _AUDIT_PATIENT, "type": "reference"},
                {"name": "_count", "definition": _COUNT, "type": "number"},
            ],
        }
    )
    resources.append(GROUP_CAPABILITY)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _STARTED,
        "publisher": "bcconnect",
        "kind": "instance",
        "software": {"name": "bcconnect", "version": __version__},
        "implementation": {"description": "Black Country shared care record (read-only)", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only: create, update, patch and delete are refused with 405. "
                + PERSON_MODEL_DOC,
                "security": rest_security(auth or AuthSettings()),
                "resource": resources,
            }
        ],
    }
    if bulk:
        statement["instantiates"] = [f"{_BULK_IG}/CapabilityStatement/bulk-data"]
        rest: dict[str, Any] = statement["rest"][0]  # type: ignore[index]
        rest["operation"] = [{"name": "export", "definition": _EXPORT_DEFINITIONS[None]}]
    return orjson.dumps(statement)
