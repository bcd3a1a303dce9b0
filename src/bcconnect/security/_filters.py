"""Read-path filters: sensitive records withheld, restricted (``R``) patients' whereabouts redacted.

Pure functions over stored JSON; the view calls them on every resource it returns (read, search, ``_include``,
``$everything``, every page). When something is withheld the Bundle says so with :func:`withheld_entry`, an
OperationOutcome that reveals neither what nor how much.

A resource is *sensitive* when ``meta.security`` carries one of the policy's labels (by default the v3 ActCode
sensitivity codes for sexual health, HIV, substance use, psychiatry, genetics, abuse, plus the confidentiality
code ``V``); it is shown only to a token with the sensitive scope. A Patient labelled v3-Confidentiality ``R``
(restricted, from PDS) never shows address, telecom, contacts or GP, whoever asks; resources about such a
patient lose their locations (:func:`redact_for_restricted_patient`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from bcconnect.config import SecuritySettings
from bcconnect.fhir.constants import V3_CONFIDENTIALITY_SYSTEM

OBSERVATION_VALUE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
#: Patient elements a restricted patient never shows
RESTRICTED_PATIENT_ELEMENTS = ("address", "telecom", "contact", "generalPractitioner")
#: resource types that are themselves a place (shown for no restricted patient's encounter or appointment)
_PLACE_TYPES = ("Location/",)


class SensitivityGrant(Protocol):
    """What the filters need to know about the caller (an AccessContext or Principal satisfies it)."""

    @property
    def allow_sensitive(self) -> bool:
        """Whether the caller's token grants sensitive records."""
        ...


@dataclass(frozen=True, slots=True)
class SensitivityPolicy:
    """The ``(system, code)`` security labels that make a resource sensitive."""

    labels: frozenset[tuple[str, str]]

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> SensitivityPolicy:
        """From ``[security] sensitive_labels`` (``system|code`` strings)."""
        pairs = (label.rsplit("|", 1) for label in settings.sensitive_labels if "|" in label)
        return cls(frozenset((system, code) for system, code in pairs))


DEFAULT_POLICY = SensitivityPolicy.from_settings(SecuritySettings())


def _security(resource: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, Mapping) else None
    for label in labels if isinstance(labels, list) else ():
        if isinstance(label, Mapping):
            yield str(label.get("system", "")), str(label.get("code", ""))


def is_sensitive(resource: Mapping[str, Any], policy: SensitivityPolicy = DEFAULT_POLICY) -> bool:
    """Whether the resource carries a sensitive security label.

    >>> is_sensitive({"meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    ...                                      "code": "STD"}]}})
    True
    >>> is_sensitive({"resourceType": "Observation"})
    False
    """
    return any(label in policy.labels for label in _security(resource))


def is_restricted_patient(patient: Mapping[str, Any]) -> bool:
    """Whether a Patient is labelled restricted (v3-Confidentiality ``R``)."""
    return (V3_CONFIDENTIALITY_SYSTEM, "R") in set(_security(patient))


def _mark_redacted(resource: dict[str, Any]) -> None:
    meta = resource.setdefault("meta", {})
    security = meta.setdefault("security", [])
    if not any(s.get("code") == "REDACTED" for s in security if isinstance(s, dict)):
        security.append({"system": OBSERVATION_VALUE_SYSTEM, "code": "REDACTED", "display": "redacted"})


def redact_restricted_patient(patient: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a restricted Patient without address, telecom, contacts and GP (labelled ``REDACTED``).

    >>> p = {"resourceType": "Patient", "address": [{"city": "Walsall"}], "telecom": [{"value": "0"}]}
    >>> sorted(redact_restricted_patient(p))
    ['meta', 'resourceType']
    """
    copied = copy.deepcopy(dict(patient))
    removed = [copied.pop(name) for name in RESTRICTED_PATIENT_ELEMENTS if name in copied]
    if removed:
        _mark_redacted(copied)
    return copied


def _is_place(reference: Any) -> bool:
    return isinstance(reference, Mapping) and str(reference.get("reference", "")).startswith(_PLACE_TYPES)


def redact_for_restricted_patient(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of any resource about a restricted patient with its whereabouts removed.

    Patient: see :func:`redact_restricted_patient`. Encounter: ``location``. Appointment: participants that
    are Locations. Other types pass through unchanged (copied).
    """
    kind = resource.get("resourceType")
    if kind == "Patient":
        return redact_restricted_patient(resource)
    copied = copy.deepcopy(dict(resource))
    changed = False
    if kind == "Encounter" and "location" in copied:
        del copied["location"]
        changed = True
    elif kind == "Appointment" and isinstance(copied.get("participant"), list):
        participants = copied["participant"]
        kept = [p for p in participants if not (isinstance(p, Mapping) and _is_place(p.get("actor")))]
        changed = len(kept) != len(copied["participant"])
        copied["participant"] = kept
    if changed:
        _mark_redacted(copied)
    return copied


def filter_resource(
    body: bytes | Mapping[str, Any],
    access: SensitivityGrant,
    *,
    policy: SensitivityPolicy = DEFAULT_POLICY,
) -> bytes | None:
    """The resource as the caller may see it (JSON bytes), or None when it must be withheld.

    Stored bytes without any security label pass through untouched (no parse, no re-serialisation).
    """
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if b'"security"' not in raw:
            return raw
        resource: Mapping[str, Any] = orjson.loads(raw)
    else:
        raw = None
        resource = body
    if is_sensitive(resource, policy) and not access.allow_sensitive:
        return None
    if resource.get("resourceType") == "Patient" and is_restricted_patient(resource):
        return orjson.dumps(redact_restricted_patient(resource))
    return raw if raw is not None else orjson.dumps(resource)


def withheld_outcome() -> dict[str, Any]:
    """An OperationOutcome saying that some information was withheld, without saying what."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "suppressed",
                "diagnostics": "Some information was withheld under the record's governance rules.",
            }
        ],
    }


def withheld_entry() -> dict[str, Any]:
    """A searchset Bundle entry carrying :func:`withheld_outcome` (``search.mode = outcome``)."""
    return {"resource": withheld_outcome(), "search": {"mode": "outcome"}}


def add_withheld_issue(outcome: bytes | None) -> bytes:
    """An OperationOutcome (JSON bytes) with the "withheld" issue added to ``outcome``'s issues, if any."""
    withheld = withheld_outcome()
    if outcome is None:
        return orjson.dumps(withheld)
    existing = orjson.loads(outcome)
    existing.setdefault("issue", []).extend(withheld["issue"])
    return orjson.dumps(existing)
