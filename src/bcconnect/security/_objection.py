"""The patient objection register: people who object to the shared care record.

Objections arrive two ways: from GP data (a Consent or Flag resource the ingest pipeline hands to
:func:`record_objection_from_resource`), and from an operator (``bcconnect objection add``). Each row names
its origin, so a source that later withdraws its objection (Consent no longer active, Flag inactive, or the
resource deleted) removes exactly the row it created.

Which codes mean "objects to the shared care record" is local policy, not a national standard we could verify,
so it is data (:class:`ObjectionRules`). The default recognises bcconnect's own code
``https://bcconnect.nhs.uk/CodeSystem/shcr-objection|objection`` anywhere in the category, scope or code, and
the shape our GP mappings emit today: a ``patient-privacy`` Consent whose category or policy text names the
shared care record.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bcconnect.errors import UsageError
from bcconnect.fhir.constants import BCCONNECT_BASE, NHS_NUMBER_SYSTEM
from bcconnect.fhir.nhs_number import is_valid as is_valid_nhs_number
from bcconnect.fhir.nhs_number import normalise
from bcconnect.store import bump_change_counter

if TYPE_CHECKING:
    from bcconnect.store import Tx

OBJECTION_CODE_SYSTEM = BCCONNECT_BASE + "/CodeSystem/shcr-objection"
OBJECTION_CODE = "objection"
DEFAULT_OBJECTION_CODING = f"{OBJECTION_CODE_SYSTEM}|{OBJECTION_CODE}"
MANUAL_ORIGIN = "manual"
#: the change-counter family of the register: every process's cached objectors are re-read on a bump
OBJECTION_FAMILY = "patient_objections"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"


class ObjectionChange(enum.Enum):
    """What a source resource did to the register."""

    RECORDED = "recorded"
    WITHDRAWN = "withdrawn"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class ObjectionRules:
    """Which codings (``system|code``) on a Consent or Flag mean an objection to the shared record."""

    codes: frozenset[str] = field(default_factory=lambda: frozenset({DEFAULT_OBJECTION_CODING}))
    #: a Consent with one of these scopes whose category text or policyRule text contains a phrase below
    #: also counts (matched case-insensitively)
    privacy_scopes: frozenset[str] = frozenset({f"{CONSENT_SCOPE_SYSTEM}|patient-privacy"})
    phrases: tuple[str, ...] = ("shared care record",)


@dataclass(frozen=True, slots=True)
class Objection:
    """One row of the register."""

    subject: str
    origin: str
    recorded_at: str
    note: str | None


def _codings(value: Any) -> Iterable[Mapping[str, Any]]:
    """Every Coding inside a CodeableConcept or a list of them."""
    concepts = value if isinstance(value, list) else [value]
    for concept in concepts:
        if isinstance(concept, Mapping):
            for coding in concept.get("coding") or []:
                if isinstance(coding, Mapping):
                    yield coding


def _matches(value: Any, rules: ObjectionRules) -> bool:
    return any(f"{c.get('system')}|{c.get('code')}" in rules.codes for c in _codings(value))


def _texts(resource: Mapping[str, Any]) -> Iterable[str]:
    """The free texts of a Consent's category and policy rule."""
    for name in ("category", "policyRule"):
        value = resource.get(name)
        for concept in value if isinstance(value, list) else [value]:
            if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
                yield concept["text"]


def _is_objection_consent(resource: Mapping[str, Any], rules: ObjectionRules) -> bool:
    if _matches(resource.get("category"), rules) or _matches(resource.get("scope"), rules):
        return True
    scopes = {f"{c.get('system')}|{c.get('code')}" for c in _codings(resource.get("scope"))}
    if not scopes & rules.privacy_scopes:
        return False
    return any(phrase in text.lower() for text in _texts(resource) for phrase in rules.phrases)


def _subject(reference: Any) -> str | None:
    """The register key for a Reference: its NHS number if it carries one, else ``Patient/<id>``."""
    if not isinstance(reference, Mapping):
        return None
    ident = reference.get("identifier")
    if isinstance(ident, Mapping) and ident.get("system") == NHS_NUMBER_SYSTEM:
        value = normalise(str(ident.get("value", "")))
        if is_valid_nhs_number(value):
            return value
    ref = reference.get("reference")
    if isinstance(ref, str) and ref.startswith("Patient/") and len(ref) > len("Patient/"):
        return ref
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _classify(resource: Mapping[str, Any], rules: ObjectionRules) -> tuple[bool | None, Any]:
    """(objects?, subject reference): True objects, False withdraws, None says nothing either way."""
    kind, status = resource.get("resourceType"), resource.get("status")
    if kind == "Consent":
        if not _is_objection_consent(resource, rules):
            return None, None
        provision = resource.get("provision")
        denies = isinstance(provision, Mapping) and provision.get("type") == "deny"
        if status == "active":
            return denies, resource.get("patient")
        if status in ("inactive", "rejected", "entered-in-error"):
            return False, resource.get("patient")
        return None, None
    if kind == "Flag":
        if not _matches(resource.get("code"), rules):
            return None, None
        if status == "active":
            return True, resource.get("subject")
        if status in ("inactive", "entered-in-error"):
            return False, resource.get("subject")
    return None, None


def record_objection_from_resource(
    tx: Tx, resource: Mapping[str, Any], *, rules: ObjectionRules | None = None
) -> ObjectionChange:
    """Update the register from one ingested Consent or Flag (any other resource is ignored).

    Call it in the same transaction that stores the resource. An active objection records a row keyed by the
    resource (``Consent/<id>``); an inactive or rejected one removes that row.
    """
    objects, reference = _classify(resource, rules or ObjectionRules())
    resource_id = resource.get("id")
    if objects is None or not isinstance(resource_id, str):
        return ObjectionChange.IGNORED
    origin = f"{resource['resourceType']}/{resource_id}"
    if not objects:
        return ObjectionChange.WITHDRAWN if forget_objection_origin(tx, origin) else ObjectionChange.IGNORED
    subject = _subject(reference)
    if subject is None:
        return ObjectionChange.IGNORED
    # one origin speaks for one subject: replace whatever it said before
    bump_change_counter(tx, OBJECTION_FAMILY, key=subject)
    tx.execute("DELETE FROM patient_objections WHERE origin = ?", (origin,))
    tx.execute(
        "INSERT INTO patient_objections (subject, origin, recorded_at, note) VALUES (?, ?, ?, ?)",
        (subject, origin, _now(), None),
    )
    return ObjectionChange.RECORDED


def forget_objection_origin(tx: Tx, origin: str) -> int:
    """Remove what one source resource said (call when the source deletes it); returns rows removed."""
    before = tx.query_one("SELECT COUNT(*) FROM patient_objections WHERE origin = ?", (origin,))
    removed = int(before[0]) if before else 0
    if removed:
        bump_change_counter(tx, OBJECTION_FAMILY, key=origin)
        tx.execute("DELETE FROM patient_objections WHERE origin = ?", (origin,))
    return removed


def _checked_nhs_number(nhs_number: str) -> str:
    value = normalise(nhs_number)
    if not is_valid_nhs_number(value):
        raise UsageError("expected a valid 10-digit NHS number (Modulus 11 check digit)")
    return value


def add_objection(tx: Tx, nhs_number: str, *, note: str | None = None) -> bool:
    """Record an operator-entered objection; False when one was already recorded by hand."""
    subject = _checked_nhs_number(nhs_number)
    exists = tx.query_one("SELECT 1 FROM patient_objections WHERE subject = ? AND origin = ?", (subject, MANUAL_ORIGIN))
    if exists:
        return False
    bump_change_counter(tx, OBJECTION_FAMILY, key=subject)
    tx.execute(
        "INSERT INTO patient_objections (subject, origin, recorded_at, note) VALUES (?, ?, ?, ?)",
        (subject, MANUAL_ORIGIN, _now(), note),
    )
    return True


def remove_objection(tx: Tx, nhs_number: str) -> int:
    """Remove every row for this NHS number (the patient withdrew the objection); returns rows removed.

    A GP source that still sends an active objection will record it again on its next ingest.
    """
    subject = _checked_nhs_number(nhs_number)
    before = tx.query_one("SELECT COUNT(*) FROM patient_objections WHERE subject = ?", (subject,))
    removed = int(before[0]) if before else 0
    if removed:
        bump_change_counter(tx, OBJECTION_FAMILY, key=subject)
        tx.execute("DELETE FROM patient_objections WHERE subject = ?", (subject,))
    return removed


def list_objections(tx: Tx) -> list[Objection]:
    """Every row of the register, by subject then origin."""
    rows = tx.query("SELECT subject, origin, recorded_at, note FROM patient_objections ORDER BY subject, origin")
    return [Objection(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def objecting_subjects(tx: Tx, *, nhs_numbers: Iterable[str] = (), patient_refs: Iterable[str] = ()) -> set[str]:
    """Which of these NHS numbers and ``Patient/<id>`` references object (an empty set: none do)."""
    subjects = sorted({normalise(n) for n in nhs_numbers} | {r for r in patient_refs if r})
    found: set[str] = set()
    for start in range(0, len(subjects), 500):  # stay under every driver's parameter limit
        chunk = subjects[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = tx.query(f"SELECT DISTINCT subject FROM patient_objections WHERE subject IN ({marks})", chunk)  # noqa: S608 - only '?' marks are interpolated
        found.update(str(r[0]) for r in rows)
    return found


def is_objecting(tx: Tx, *, nhs_numbers: Iterable[str] = (), patient_refs: Iterable[str] = ()) -> bool:
    """Whether any of these identities of one person is in the register."""
    return bool(objecting_subjects(tx, nhs_numbers=nhs_numbers, patient_refs=patient_refs))


def patient_identities(patient: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(NHS numbers, ``Patient/<id>`` references) of a Patient resource, to ask the register about."""
    numbers = [
        normalise(str(i.get("value", "")))
        for i in patient.get("identifier") or []
        if isinstance(i, Mapping) and i.get("system") == NHS_NUMBER_SYSTEM and i.get("value")
    ]
    refs = [f"Patient/{patient['id']}"] if isinstance(patient.get("id"), str) else []
    return numbers, refs
