"""What the cohort rules need from one resource: one reading, shared by the facts read model and the oracle.

A Condition gives its SNOMED CT codes when it counts (current, not refuted); an Encounter gives one event — an
emergency stay (``IMP`` with an emergency admission method) or an A&E attendance (``EMER``) — with its period; a
golden Patient gives the person's NHS number, birth date, postcode district and borough, GP practice and the
Patient ids that are this person (itself and the source Patients its ``link``\\ s name).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bcconnect.cohorts._definitions import borough_of
from bcconnect.fhir.constants import (
    ADMISSION_METHOD_EXTENSION,
    EMERGENCY_ADMISSION_METHODS,
    NHS_NUMBER_SYSTEM,
    ODS_ORGANIZATION_SYSTEM,
    SNOMED_SYSTEM,
)

GOLDEN_CODE = "golden"
_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_NOT_TRUE = frozenset({"refuted", "entered-in-error"})
FOREVER = datetime.max.replace(tzinfo=UTC)
#: the two kinds of event, named as the rules name them
STAYS = "emergency_admissions"
ATTENDANCES = "ae_attendances"


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` minus whole calendar months (the day clipped to the month's length).

    >>> months_before(datetime(2026, 3, 31, 9, tzinfo=UTC), 1).isoformat()
    '2026-02-28T09:00:00+00:00'
    >>> months_before(datetime(2024, 2, 29, tzinfo=UTC), 12).date().isoformat()
    '2023-02-28'
    """
    total = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(total, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def parse_instant(text: object) -> datetime | None:
    """A FHIR dateTime as an aware UTC datetime (a date is its midnight UTC, no zone is UTC), or None."""
    if not isinstance(text, str) or len(text) < 4:
        return None
    try:
        if len(text) == 4:
            found = datetime(int(text), 1, 1, tzinfo=UTC)
        elif len(text) == 7:
            found = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        else:
            found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def distinct_starts(periods: Iterable[tuple[datetime, datetime]]) -> list[datetime]:
    """The start of each distinct event: periods that overlap (directly or through others) are one event.

    >>> d = lambda h: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h)
    >>> [s.hour for s in distinct_starts([(d(0), d(30)), (d(2), d(28)), (d(40), d(50))])]
    [0, 16]
    """
    out: list[datetime] = []
    reach: datetime | None = None
    for start, end in sorted(periods):
        if reach is not None and start < reach:
            reach = max(reach, end)
            continue
        out.append(start)
        reach = end
    return out


def _codes(concept: object, system: str | None) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {
        str(c.get("code"))
        for c in concept.get("coding") or ()
        if isinstance(c, dict) and c.get("code") and (system is None or c.get("system") == system)
    }


def subject_patient(resource: Mapping[str, Any]) -> str | None:
    """The Patient id ``subject`` names, or None."""
    subject = resource.get("subject")
    if isinstance(subject, dict):
        ref = subject.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref.removeprefix("Patient/")
    return None


def condition_codes(resource: Mapping[str, Any]) -> set[str]:
    """The SNOMED CT codes of a Condition that counts (clinicalStatus active, recurrence, relapse or absent; not
    refuted or entered in error); empty when it does not count."""
    clinical = _codes(resource.get("clinicalStatus"), None)
    if clinical and not clinical & _ACTIVE:
        return set()
    if _codes(resource.get("verificationStatus"), None) & _NOT_TRUE:
        return set()
    return _codes(resource.get("code"), SNOMED_SYSTEM)


def _period(resource: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    period = resource.get("period")
    if not isinstance(period, dict):
        return None
    start = parse_instant(period.get("start"))
    if start is None:
        return None
    end = parse_instant(period.get("end")) or FOREVER
    return start, max(end, start + timedelta(seconds=1))


def _admission_methods(resource: Mapping[str, Any]) -> set[str]:
    # UK Core carries the method on hospitalization; some senders put it on the Encounter itself
    stay = resource.get("hospitalization")
    carried = [
        *(resource.get("extension") or ()),
        *((stay.get("extension") or ()) if isinstance(stay, dict) else ()),
    ]
    found: set[str] = set()
    for ext in carried:
        if isinstance(ext, dict) and ext.get("url") == ADMISSION_METHOD_EXTENSION:
            found |= _codes(ext.get("valueCodeableConcept"), None)
    return found


def encounter_event(resource: Mapping[str, Any]) -> tuple[str, datetime, datetime] | None:
    """``(kind, start, end)`` of an Encounter that is an emergency stay or an A&E attendance, else None.

    Cancelled, planned and entered-in-error Encounters are none; one without an end is still open (its end is
    the far future); an end before its start is taken as one second after it.
    """
    if resource.get("status") in ("cancelled", "entered-in-error", "planned"):
        return None
    klass = resource.get("class")
    code = klass.get("code") if isinstance(klass, dict) else None
    if code not in ("IMP", "EMER"):
        return None
    period = _period(resource)
    if period is None:
        return None
    if code == "EMER":
        return ATTENDANCES, *period
    if _admission_methods(resource) & EMERGENCY_ADMISSION_METHODS:
        return STAYS, *period
    return None


@dataclass(frozen=True, slots=True)
class GoldenFacts:
    """A person's facts from their golden Patient."""

    person_id: str
    nhs_number: str | None
    birth_date: date | None
    district: str | None
    borough: str | None
    practice: str | None
    #: every Patient id that is this person: the golden id and the source Patients its links name
    patient_ids: tuple[str, ...]


def is_golden_patient(resource: Mapping[str, Any]) -> bool:
    """Whether a Patient carries the golden (person-level) tag."""
    tags = (resource.get("meta") or {}).get("tag") or ()
    return any(isinstance(t, dict) and t.get("code") == GOLDEN_CODE for t in tags)


def _district(postcode: str) -> str:
    text = postcode.upper().strip()
    return text.split()[0] if " " in text else text[:-3]


def golden_facts(resource: Mapping[str, Any], places: Mapping[str, str]) -> GoldenFacts | None:
    """The person's facts from a golden Patient; None for any other Patient and for a golden one retired by a
    merge (``active: false``, a ``replaced-by`` link: its records went to another person)."""
    if not is_golden_patient(resource) or resource.get("active") is False:
        return None
    person_id = str(resource.get("id"))
    nhs = None
    for ident in resource.get("identifier") or ():
        if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM and ident.get("value"):
            nhs = str(ident["value"]).replace(" ", "")
    try:
        birth: date | None = date.fromisoformat(str(resource.get("birthDate")))
    except ValueError:
        birth = None
    district = borough = None
    for address in resource.get("address") or ():
        if isinstance(address, dict) and address.get("use") not in ("old",) and address.get("postalCode"):
            postcode = str(address["postalCode"])
            district = _district(postcode) or None
            borough = borough_of(postcode, dict(places))
            break
    practice = None
    for gp in resource.get("generalPractitioner") or ():
        if not isinstance(gp, dict):
            continue
        ident = gp.get("identifier")
        if isinstance(ident, dict) and ident.get("system") == ODS_ORGANIZATION_SYSTEM and ident.get("value"):
            practice = str(ident["value"])
            break
        ref = gp.get("reference")
        if isinstance(ref, str) and ref.startswith("Organization/"):
            practice = ref.removeprefix("Organization/")
            break
    linked = [
        str(link["other"]["reference"]).removeprefix("Patient/")
        for link in resource.get("link") or ()
        if isinstance(link, dict)
        and link.get("type") == "seealso"
        and isinstance(link.get("other"), dict)
        and str(link["other"].get("reference", "")).startswith("Patient/")
    ]
    return GoldenFacts(person_id, nhs, birth, district, borough, practice, tuple(dict.fromkeys([person_id, *linked])))
