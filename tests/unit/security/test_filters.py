"""Read-path filters: sensitive resources withheld without the grant; restricted patients redacted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from bcconnect.config import SecuritySettings
from bcconnect.fhir.constants import V3_ACT_CODE_SYSTEM, V3_CONFIDENTIALITY_SYSTEM
from bcconnect.security import (
    SensitivityPolicy,
    filter_resource,
    is_restricted_patient,
    redact_for_restricted_patient,
    withheld_entry,
)


@dataclass(frozen=True)
class Caller:
    allow_sensitive: bool


CLINICIAN, SENSITIVE_READER = Caller(False), Caller(True)


def labelled(code: str, system: str = V3_ACT_CODE_SYSTEM, kind: str = "Condition") -> dict[str, Any]:
    return {"resourceType": kind, "id": "c1", "meta": {"security": [{"system": system, "code": code}]}}


def restricted_patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"security": [{"system": V3_CONFIDENTIALITY_SYSTEM, "code": "R"}]},
        "name": [{"family": "Smith"}],
        "address": [{"postalCode": "WV10 0QP"}],
        "telecom": [{"system": "phone", "value": "01902 000000"}],
        "contact": [{"name": {"family": "Jones"}}],
        "generalPractitioner": [{"reference": "Organization/gp"}],
    }


@pytest.mark.parametrize("code", ["STD", "HIV", "SEX", "PSY", "ETH", "SDV"])
def test_sensitive_resources_are_withheld_without_the_grant(code: str) -> None:
    """A sexual-health (or other sensitive) label hides the resource from an ordinary clinician."""
    body = orjson.dumps(labelled(code))
    assert filter_resource(body, CLINICIAN) is None
    assert filter_resource(body, SENSITIVE_READER) == body


def test_unlabelled_bytes_pass_through_unchanged() -> None:
    """Stored bytes without meta.security are returned as they are (the fast path)."""
    body = b'{"resourceType":"Observation","id":"o1","status":"final"}'
    assert filter_resource(body, CLINICIAN) is body


def test_non_sensitive_labels_do_not_hide_a_resource() -> None:
    """A label outside the policy (here confidentiality N) is not a reason to withhold."""
    assert filter_resource(labelled("N", V3_CONFIDENTIALITY_SYSTEM), CLINICIAN) is not None


def test_the_policy_comes_from_configuration() -> None:
    """Labels are configuration: a policy without STD lets STD through."""
    policy = SensitivityPolicy.from_settings(SecuritySettings(sensitive_labels=(f"{V3_ACT_CODE_SYSTEM}|HIV",)))
    assert filter_resource(labelled("STD"), CLINICIAN, policy=policy) is not None
    assert filter_resource(labelled("HIV"), CLINICIAN, policy=policy) is None


@pytest.mark.parametrize("caller", [CLINICIAN, SENSITIVE_READER])
def test_a_restricted_patient_never_shows_address_telecom_contacts_or_gp(caller: Caller) -> None:
    """Whoever asks, R patients lose their whereabouts; the name stays; the copy says it was redacted."""
    out = filter_resource(orjson.dumps(restricted_patient()), caller)
    assert out is not None
    shown = orjson.loads(out)
    assert is_restricted_patient(shown)
    for element in ("address", "telecom", "contact", "generalPractitioner"):
        assert element not in shown
    assert shown["name"] == [{"family": "Smith"}]
    assert {"REDACTED", "R"} <= {s["code"] for s in shown["meta"]["security"]}
    assert b"WV10" not in out
    assert b"01902" not in out


def test_resources_about_a_restricted_patient_lose_their_locations() -> None:
    """Encounter.location and Location participants of an Appointment are removed."""
    encounter = {"resourceType": "Encounter", "location": [{"location": {"reference": "Location/ward"}}]}
    appointment = {
        "resourceType": "Appointment",
        "participant": [{"actor": {"reference": "Location/clinic"}}, {"actor": {"reference": "Patient/p1"}}],
    }
    assert "location" not in redact_for_restricted_patient(encounter)
    assert redact_for_restricted_patient(appointment)["participant"] == [{"actor": {"reference": "Patient/p1"}}]
    assert "location" in encounter  # the input is not modified


def test_the_withheld_entry_says_so_without_saying_what() -> None:
    """The OperationOutcome entry is informational 'suppressed' and names no resource or count."""
    entry = withheld_entry()
    issue = entry["resource"]["issue"][0]
    assert entry["search"]["mode"] == "outcome"
    assert (issue["severity"], issue["code"]) == ("information", "suppressed")
    assert "Condition" not in orjson.dumps(entry).decode()
