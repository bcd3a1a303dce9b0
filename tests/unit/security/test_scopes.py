"""SMART scopes: which resource types and interactions a token's scopes allow."""

from __future__ import annotations

import pytest

from bcconnect.security import SENSITIVE_SCOPE, Interaction, ScopeSet, parse_scope


@pytest.mark.parametrize(
    ("text", "letters"),
    [
        ("patient/Observation.rs", "rs"),
        ("user/Patient.r", "r"),
        ("system/*.cruds", "cruds"),
        ("user/*.read", "rs"),
        ("patient/Observation.*", "cruds"),
        ("system/Encounter.s", "s"),
    ],
)
def test_valid_scopes_parse_to_their_permission_letters(text: str, letters: str) -> None:
    """v2 letters and the v1 read/* forms become permission sets."""
    scope = parse_scope(text)
    assert scope is not None
    assert scope.permissions == frozenset(letters)


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "launch/patient",
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.sr",
        "patient/observation.rs",
        "doctor/Patient.rs",
        "patient/Observation.",
        "patient/Observation.rs extra",
    ],
)
def test_other_strings_are_not_clinical_scopes(text: str) -> None:
    """Non-clinical scopes, out-of-order letters and parameterised scopes grant nothing."""
    assert parse_scope(text) is None


def test_a_type_scope_allows_only_that_type_and_its_letters() -> None:
    """patient/Observation.r allows reading Observations, not searching them, nor other types."""
    scopes = ScopeSet.parse("patient/Observation.r")
    assert scopes.allows("Observation", Interaction.READ)
    assert scopes.allows("Observation", Interaction.VREAD)
    assert not scopes.allows("Observation", Interaction.SEARCH)
    assert not scopes.allows("Condition", Interaction.READ)


def test_a_wildcard_never_grants_the_audit_trail() -> None:
    """system/*.rs reads every clinical type but not AuditEvent, which needs its own scope."""
    wildcard = ScopeSet.parse("system/*.rs")
    assert wildcard.allows("Condition", Interaction.SEARCH)
    assert not wildcard.allows("AuditEvent", Interaction.SEARCH)
    assert ScopeSet.parse("system/AuditEvent.rs").allows("AuditEvent", Interaction.SEARCH)


def test_patient_only_is_true_when_every_grant_is_a_patient_scope() -> None:
    """A call granted only by patient/ scopes must be confined to the token's patient."""
    assert ScopeSet.parse("patient/*.rs").patient_only("Observation", Interaction.SEARCH)
    assert not ScopeSet.parse("patient/*.rs user/Observation.rs").patient_only("Observation", Interaction.SEARCH)


def test_sensitive_data_needs_the_sensitive_scope() -> None:
    """Only the explicit sensitive scope lets a token see sensitive records."""
    assert not ScopeSet.parse("system/*.cruds").allow_sensitive
    assert ScopeSet.parse(f"user/*.rs {SENSITIVE_SCOPE}").allow_sensitive
