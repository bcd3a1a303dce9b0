"""Typed facts read from the person-centred FHIR resources the view returns (JSON in, frozen dataclasses out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bcconnect.triage._config import Systems
from bcconnect.triage._rtt import ClockEvent

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"

Json = Mapping[str, Any]


def parse_day(value: object) -> date | None:
    """The date part of a FHIR date or dateTime (None when absent or unreadable)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def parse_moment(value: object) -> datetime | None:
    """A FHIR dateTime/instant (None when absent, partial or unreadable)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def trusts_of(resource: Json) -> tuple[str, ...]:
    """The trusts (ODS codes) a resource came from: its ``meta.tag`` ODS codes, in order."""
    tags = resource.get("meta", {}).get("tag", [])
    return tuple(t["code"] for t in tags if isinstance(t, Mapping) and t.get("system") == ODS_SYSTEM and "code" in t)


def patient_id(reference: object) -> str | None:
    """The id in a ``{"reference": "Patient/<id>"}``."""
    if isinstance(reference, Mapping):
        ref = reference.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref.removeprefix("Patient/")
    return None


def codes(concept: object, system: str | None = None) -> frozenset[str]:
    """Codes of a CodeableConcept (or a list of them), optionally only those of ``system``."""
    concepts = concept if isinstance(concept, list) else [concept]
    found: set[str] = set()
    for c in concepts:
        if not isinstance(c, Mapping):
            continue
        for coding in c.get("coding", []):
            if isinstance(coding, Mapping) and "code" in coding and (system is None or coding.get("system") == system):
                found.add(str(coding["code"]))
    return frozenset(found)


def display(concept: object) -> str:
    """A CodeableConcept's text, or its first coding's display, or its first code."""
    concepts = concept if isinstance(concept, list) else [concept]
    for c in concepts:
        if not isinstance(c, Mapping):
            continue
        if c.get("text"):
            return str(c["text"])
        for coding in c.get("coding", []):
            if isinstance(coding, Mapping) and (coding.get("display") or coding.get("code")):
                return str(coding.get("display") or coding.get("code"))
    return ""


def _identifier(resource: Json, systems: tuple[str, ...]) -> str | None:
    for ident in resource.get("identifier", []):
        if isinstance(ident, Mapping) and ident.get("system") in systems and ident.get("value"):
            return str(ident["value"])
    return None


def _ods(reference: object) -> str | None:
    if isinstance(reference, Mapping):
        ident = reference.get("identifier")
        if isinstance(ident, Mapping) and ident.get("system") == ODS_SYSTEM and ident.get("value"):
            return str(ident["value"])
    return None


@dataclass(frozen=True, slots=True)
class Referral:
    """A ServiceRequest as triage sees it."""

    id: str
    patient: str
    trust: str
    ubrn: str | None
    status: str
    priority: str
    received: date | None
    tfc: str | None
    reasons: frozenset[str]
    reason_text: str
    requester: str | None
    outcome: str | None

    @property
    def awaiting_triage(self) -> bool:
        """Active and no review outcome yet (the e-RS ``REFERRALS_FOR_REVIEW`` worklist)."""
        return self.status == "active" and self.outcome is None

    @property
    def open(self) -> bool:
        """Still active at its provider."""
        return self.status in ("active", "on-hold", "draft")


def referral_from(resource: Json, systems: Systems) -> Referral | None:
    """The :class:`Referral` of a ServiceRequest (None without a subject)."""
    patient = patient_id(resource.get("subject"))
    if patient is None:
        return None
    performers = resource.get("performer", [])
    trust = next((o for o in (_ods(p) for p in performers) if o), None) or next(iter(trusts_of(resource)), "")
    outcome = None
    for ext in resource.get("extension", []):
        if isinstance(ext, Mapping) and ext.get("url") == systems.review_outcome_extension:
            outcome = str(ext.get("valueCoding", {}).get("code") or "") or None
    tfc = next(iter(codes(resource.get("performerType"), systems.treatment_function)), None)
    return Referral(
        id=str(resource.get("id", "")),
        patient=patient,
        trust=trust,
        ubrn=_identifier(resource, (systems.ubrn,)),
        status=str(resource.get("status", "unknown")),
        priority=str(resource.get("priority", "routine")),
        received=parse_day(resource.get("occurrenceDateTime")) or parse_day(resource.get("authoredOn")),
        tfc=tfc,
        reasons=codes(resource.get("reasonCode", [])),
        reason_text=display(resource.get("reasonCode", [])) or display(resource.get("performerType")),
        requester=_ods(resource.get("requester")),
        outcome=outcome,
    )


@dataclass(frozen=True, slots=True)
class Pathway:
    """An EpisodeOfCare (one provider's part of an RTT pathway)."""

    id: str
    patient: str
    trust: str
    ppi: str | None
    status: str
    start: date | None
    end: date | None
    tfc: str | None
    referral_ids: tuple[str, ...]
    events: tuple[ClockEvent, ...]
    fds: date | None


def pathway_from(resource: Json, systems: Systems) -> Pathway | None:
    """The :class:`Pathway` of an EpisodeOfCare (None without a patient)."""
    patient = patient_id(resource.get("patient"))
    if patient is None:
        return None
    trust = _ods(resource.get("managingOrganization")) or next(iter(trusts_of(resource)), "")
    events: list[ClockEvent] = []
    fds = None
    for ext in resource.get("extension", []):
        if not isinstance(ext, Mapping):
            continue
        if ext.get("url") == systems.rtt_event_extension:
            parts = {e.get("url"): e for e in ext.get("extension", []) if isinstance(e, Mapping)}
            code = parts.get("code", {}).get("valueCoding", {}).get("code")
            day = parse_day(parts.get("date", {}).get("valueDate"))
            if code and day:
                events.append(ClockEvent(day, str(code), trust))
        elif ext.get("url") == systems.faster_diagnosis_extension:
            fds = parse_day(ext.get("valueDate"))
    period = resource.get("period", {})
    start, end = parse_day(period.get("start")), parse_day(period.get("end"))
    status = str(resource.get("status", "unknown"))
    if not events and start is not None:
        # a provider that sends no status events: the period is the clock (start; end = a stop we cannot name)
        events.append(ClockEvent(start, "10", trust))
        if end is not None and status == "finished":
            events.append(ClockEvent(end, "30", trust))
    refs = tuple(
        str(r["reference"]).removeprefix("ServiceRequest/")
        for r in resource.get("referralRequest", [])
        if isinstance(r, Mapping) and isinstance(r.get("reference"), str)
    )
    tfc = next(iter(codes(resource.get("type", []), systems.treatment_function)), None)
    return Pathway(
        id=str(resource.get("id", "")),
        patient=patient,
        trust=trust,
        ppi=_identifier(resource, systems.ppi),
        status=status,
        start=start,
        end=end,
        tfc=tfc,
        referral_ids=refs,
        events=tuple(events),
        fds=fds,
    )


@dataclass(frozen=True, slots=True)
class Appointment:
    """An Appointment, with the referral it is based on."""

    id: str
    patient: str | None
    trust: str
    status: str
    start: datetime | None
    referral_ids: tuple[str, ...]
    cancelled_by: str | None


def appointment_from(resource: Json) -> Appointment:
    """The :class:`Appointment` of an Appointment resource."""
    patient = next(
        (
            p
            for p in (patient_id(x.get("actor")) for x in resource.get("participant", []) if isinstance(x, Mapping))
            if p
        ),
        None,
    )
    refs = tuple(
        str(r["reference"]).removeprefix("ServiceRequest/")
        for r in resource.get("basedOn", [])
        if isinstance(r, Mapping) and isinstance(r.get("reference"), str)
    )
    reason = codes(resource.get("cancelationReason"))
    cancelled_by = "patient" if "pat" in reason else "provider" if "prov" in reason else None
    return Appointment(
        id=str(resource.get("id", "")),
        patient=patient,
        trust=next(iter(trusts_of(resource)), ""),
        status=str(resource.get("status", "unknown")),
        start=parse_moment(resource.get("start")),
        referral_ids=refs,
        cancelled_by=cancelled_by,
    )
