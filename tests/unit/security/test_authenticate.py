"""From header to principal (401) and from principal to permission (403); the local issuer round trip."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bcconnect.config import AuthMode, AuthSettings, JwtIssuer
from bcconnect.errors import ConfigError, Forbidden, NotAuthenticated
from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    ODS_ORGANIZATION_SYSTEM,
    SDS_ROLE_PROFILE_SYSTEM,
    SDS_USER_SYSTEM,
)
from bcconnect.security import (
    ANONYMOUS_DEVELOPER,
    Interaction,
    Principal,
    ScopeSet,
    authorise,
    build_authenticator,
    ensure_local_issuer,
    principal_from_claims,
    www_authenticate,
)

from .conftest import ISSUER, good_claims

pytestmark = pytest.mark.anyio


def principal(scope: str = "user/*.rs", *, purpose: str = "directcare", patient: str | None = None) -> Principal:
    return Principal(
        user="912345678901",
        role="R8000",
        organisation="RL4",
        purpose=purpose,
        scopes=ScopeSet.parse(scope),
        issuer=ISSUER,
        patient=patient,
    )


def test_plain_claims_become_a_principal() -> None:
    """The local issuer's flat claims give user, role, organisation, purpose, scopes and client."""
    who = principal_from_claims(good_claims(patient="p1"), issuer=ISSUER)
    assert (who.user, who.role, who.organisation, who.purpose) == ("912345678901", "R8000", "RL4", "directcare")
    assert who.patient == "p1"
    assert who.client_id == "test-client"


def test_gp_connect_shaped_claims_become_a_principal() -> None:
    """GP Connect puts identities inside FHIR resources; they are read from their identifiers."""
    claims = good_claims(
        requesting_user=None,
        requesting_role=None,
        requesting_organization={
            "resourceType": "Organization",
            "identifier": [{"system": ODS_ORGANIZATION_SYSTEM, "value": "RXK"}],
        },
        requesting_practitioner={
            "resourceType": "Practitioner",
            "identifier": [
                {"system": SDS_USER_SYSTEM, "value": "111122223333"},
                {"system": SDS_ROLE_PROFILE_SYSTEM, "value": "444455556666"},
            ],
        },
        requested_record={
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}],
        },
        reason_for_request=None,
        purpose_of_use="directcare",
    )
    who = principal_from_claims(claims, issuer=ISSUER)
    assert (who.user, who.role, who.organisation) == ("111122223333", "444455556666", "RXK")
    assert who.patient_nhs_number == "9990000018"
    assert who.purpose == "directcare"


@pytest.mark.parametrize("missing", ["requesting_user", "requesting_role", "requesting_organization"])
def test_a_token_without_an_identity_claim_is_not_authenticated(missing: str) -> None:
    """Without who, which role or which organisation, the token cannot be used here (401)."""
    with pytest.raises(NotAuthenticated, match=missing):
        principal_from_claims(good_claims(**{missing: None}), issuer=ISSUER)


@pytest.mark.parametrize("purpose", ["", "research", "DIRECTCARE"])
def test_any_purpose_but_direct_care_is_forbidden(purpose: str) -> None:
    """The record serves direct care only; a missing or other purpose is 403."""
    with pytest.raises(Forbidden, match="purpose of use"):
        authorise(principal(purpose=purpose), resource_type="Patient", interaction=Interaction.READ)


def test_a_scope_that_does_not_cover_the_request_is_forbidden() -> None:
    """patient/Observation.rs does not allow reading a Condition."""
    with pytest.raises(Forbidden, match="scopes"):
        authorise(principal("user/Observation.rs"), resource_type="Condition", interaction=Interaction.READ)


def test_patient_scopes_confine_the_call_to_the_tokens_patient() -> None:
    """A patient/ grant returns the patient to confine to, and needs the token to name one."""
    assert (
        authorise(principal("patient/*.rs", patient="p1"), resource_type="Observation", interaction=Interaction.SEARCH)
        == "p1"
    )
    assert authorise(principal("user/*.rs"), resource_type="Observation", interaction=Interaction.SEARCH) is None
    with pytest.raises(Forbidden, match="name its patient"):
        authorise(principal("patient/*.rs"), resource_type="Observation", interaction=Interaction.SEARCH)


def test_www_authenticate_names_the_error_and_strips_unsafe_characters() -> None:
    """The header is RFC 6750 shaped and cannot be broken by quotes or newlines in a message."""
    value = www_authenticate(NotAuthenticated('bad "token"\r\nX-Injected: 1'))
    assert value.startswith('Bearer realm="bcconnect", error="invalid_token"')
    assert "\r" not in value
    assert "\n" not in value
    assert value.count('"') == 6
    assert 'error="insufficient_scope"' in www_authenticate(Forbidden("no"))


async def test_mode_none_needs_the_explicit_flag_and_warns() -> None:
    """Authentication off is refused without allow_no_auth; with it every caller is the anonymous developer."""
    settings = AuthSettings(mode=AuthMode.NONE)
    with pytest.raises(ConfigError, match="authentication is off"):
        build_authenticator(settings, root=Path())
    with capture_logs() as logs:
        authenticator = build_authenticator(settings, root=Path(), allow_no_auth=True)
    assert [e["log_level"] for e in logs if e["event"] == "auth_disabled"] == ["warning"]
    assert not authenticator.enabled
    assert await authenticator.authenticate(None) is ANONYMOUS_DEVELOPER


def test_jwt_mode_needs_an_issuer_with_exactly_one_key_location() -> None:
    """Misconfigured issuers are caught at start-up, naming the key."""
    with pytest.raises(ConfigError, match="no trusted token issuers"):
        build_authenticator(AuthSettings(), root=Path())
    both = JwtIssuer(issuer="i", audience="a", jwks_file="k.json", jwks_url="https://k.test/jwks")
    with pytest.raises(ConfigError, match="exactly one"):
        build_authenticator(AuthSettings(issuers=(both,)), root=Path())


async def test_the_local_issuer_mints_tokens_the_server_trusts(tmp_path: Path) -> None:
    """ensure_local_issuer writes an owner-only key and a JWKS; its tokens authenticate; reruns reuse the key."""
    issuer = ensure_local_issuer(tmp_path)
    assert stat.S_IMODE(issuer.key_path.stat().st_mode) == 0o600
    again = ensure_local_issuer(tmp_path)
    assert again.kid == issuer.kid
    settings = AuthSettings(issuers=(issuer.as_jwt_issuer(),))
    authenticator = build_authenticator(settings, root=tmp_path)
    token = issuer.issue(scopes=["user/*.rs"], user="912345678901", org="RNA", role="R0260", ttl=60)
    who = await authenticator.authenticate(f"Bearer {token}")
    assert (who.user, who.organisation, who.role, who.purpose) == ("912345678901", "RNA", "R0260", "directcare")
    assert who.scopes.allows("Patient", Interaction.READ)


async def test_the_local_issuer_can_leave_the_purpose_out(tmp_path: Path) -> None:
    """purpose='' issues a token without reason_for_request (to test the 403)."""
    issuer = ensure_local_issuer(tmp_path)
    authenticator = build_authenticator(AuthSettings(issuers=(issuer.as_jwt_issuer(),)), root=tmp_path)
    who = await authenticator.authenticate(
        "Bearer " + issuer.issue(scopes="user/*.rs", user="u", org="RL4", purpose="")
    )
    with pytest.raises(Forbidden):
        authorise(who, resource_type="Patient", interaction=Interaction.READ)


async def test_a_token_from_another_local_issuer_is_refused(tmp_path: Path) -> None:
    """Two data dirs, two keys: the server trusting one refuses the other's tokens (same iss and kid scheme)."""
    trusted = ensure_local_issuer(tmp_path / "a")
    stranger = ensure_local_issuer(tmp_path / "b")
    authenticator = build_authenticator(AuthSettings(issuers=(trusted.as_jwt_issuer(),)), root=tmp_path)
    with pytest.raises(NotAuthenticated):
        await authenticator.authenticate("Bearer " + stranger.issue(scopes="user/*.rs", user="u", org="RL4"))
