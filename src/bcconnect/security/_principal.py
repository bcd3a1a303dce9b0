"""Who is asking: the verified claims of one request, and how they are read from a token.

The claims mirror GP Connect's access token: the requesting user (SDS user id), their role (SDS role profile),
the requesting organisation (ODS code), the reason for the request (``directcare``) and, for patient-level
calls, the patient. Each may come in GP Connect's shape (a FHIR resource with an identifier) or as a plain
string claim, which is what our local issuer writes::

    requesting_user          "912345678901"  | requesting_practitioner.identifier[sds-user-id]
    requesting_role          "R8000"         | requesting_practitioner.identifier[sds-role-profile-id]
    requesting_organization  "RL4"           | requesting_organization.identifier[ods-organization-code]
    reason_for_request       "directcare"    | purpose_of_use
    patient                  "<Patient id>"  | requested_record.identifier[nhs-number]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bcconnect.errors import NotAuthenticated
from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    ODS_ORGANIZATION_SYSTEM,
    SDS_ROLE_PROFILE_SYSTEM,
    SDS_USER_SYSTEM,
)
from bcconnect.security._scopes import ScopeSet

#: the only purpose of use a shared care record serves
DIRECT_CARE = "directcare"


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified identity and grants of one caller (built only from a token that passed every check)."""

    user: str
    role: str
    organisation: str
    purpose: str
    scopes: ScopeSet
    issuer: str
    #: the patient the token is limited to (a Patient id), if any
    patient: str | None = None
    #: the NHS number the token is limited to (GP Connect ``requested_record``), if any
    patient_nhs_number: str | None = None
    client_id: str | None = None
    token_id: str | None = None

    @property
    def allow_sensitive(self) -> bool:
        """Whether the token grants resources with sensitive security labels."""
        return self.scopes.allow_sensitive


def _identifier_value(resource: object, system: str) -> str | None:
    """The value of the first identifier with ``system`` in a FHIR-resource-shaped claim."""
    if not isinstance(resource, Mapping):
        return None
    identifiers = resource.get("identifier")
    if isinstance(identifiers, Mapping):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return None
    for ident in identifiers:
        if isinstance(ident, Mapping) and ident.get("system") == system:
            value = ident.get("value")
            if isinstance(value, str) and value:
                return value
    return None


def _string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value.strip() else None


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v), None)


def principal_from_claims(claims: Mapping[str, Any], *, issuer: str) -> Principal:
    """Read the caller from verified claims; NotAuthenticated names the first identity claim missing.

    Purpose of use is read but not judged here: a token for another purpose is authentic, and the refusal
    (403) is an authorisation decision made with the request in hand (see ``authorise``).
    """
    practitioner = claims.get("requesting_practitioner")
    user = _first(_string(claims, "requesting_user"), _identifier_value(practitioner, SDS_USER_SYSTEM))
    role = _first(_string(claims, "requesting_role"), _identifier_value(practitioner, SDS_ROLE_PROFILE_SYSTEM))
    org_claim = claims.get("requesting_organization")
    organisation = _first(
        org_claim if isinstance(org_claim, str) and org_claim.strip() else None,
        _identifier_value(org_claim, ODS_ORGANIZATION_SYSTEM),
    )
    for name, value in (
        ("requesting_user", user),
        ("requesting_role", role),
        ("requesting_organization", organisation),
    ):
        if value is None:
            raise NotAuthenticated(f"the access token has no {name} claim")
    # narrowed by the loop above, for the type checker
    assert user is not None
    assert role is not None
    assert organisation is not None
    scope_claim = claims.get("scope", "")
    scopes = ScopeSet.parse(
        scope_claim
        if isinstance(scope_claim, str)
        else [s for s in scope_claim if isinstance(s, str)]
        if isinstance(scope_claim, list)
        else ""
    )
    purpose = _first(_string(claims, "reason_for_request"), _string(claims, "purpose_of_use")) or ""
    return Principal(
        user=user,
        role=role,
        organisation=organisation,
        purpose=purpose,
        scopes=scopes,
        issuer=issuer,
        patient=_string(claims, "patient"),
        patient_nhs_number=_identifier_value(claims.get("requested_record"), NHS_NUMBER_SYSTEM),
        client_id=_first(_string(claims, "client_id"), _string(claims, "azp")),
        token_id=_string(claims, "jti"),
    )
