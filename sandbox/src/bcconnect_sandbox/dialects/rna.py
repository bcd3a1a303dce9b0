"""Source records in RNA's vendor JSON: own field names, dd/mm/yyyy dates, local codes (see ``rna.md``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

from bcconnect_sandbox import density
from bcconnect_sandbox.population import (
    Allergy,
    Condition,
    Encounter,
    Medication,
    Observation,
)
from bcconnect_sandbox.referrals import Referral
from bcconnect_sandbox.sources import Record, SourcePatient

Json = dict[str, object]

#: RNA entity name of each record kind; kinds not listed are not in RNA's feed
ENTITY: Final = {
    "patient": "patient",
    "encounter": "encounter",
    "condition": "diagnosis",
    "observation": "result",
    "medication": "medication",
    "allergy": "allergy",
    "referral": "referral",
    "appointment": "appointment",
    "pathway": "pathway",
}
#: RNA's PAS has no code for 04 (trace attempted, no or several matches): its clerks record it as trace required
NHS_STATUS: Final = {"01": "V", "02": "U", "03": "T", "04": "T", "05": "R"}
ETHNICITY: Final = {
    "A": "WBRI",
    "B": "WIRI",
    "C": "WOTH",
    "D": "MWBC",
    "E": "MWBA",
    "F": "MWAS",
    "G": "MOTH",
    "H": "AIND",
    "J": "APKN",
    "K": "ABAN",
    "L": "AOTH",
    "M": "BCRB",
    "N": "BAFR",
    "P": "BOTH",
    "R": "CHNE",
    "S": "OOTH",
    "Z": "REFU",
    "99": "NOBT",
}
ENCOUNTER_TYPE: Final = {
    "ae": "AE",
    "emergency": "EMERGENCY",
    "elective": "ELECTIVE",
    "outpatient": "OPD",
    "sexual_health": "GUM",
}
RESULT_CODES: Final = {
    "hba1c": (("HBA1C", "HbA1c"),),
    "egfr": (("EGFR", "eGFR"),),
    "bmi": (("BMI", "Body mass index"),),
    "bp": (("BP", "Blood pressure"),),
    "fbc": (("HB", "Haemoglobin"), ("WBC", "White cell count"), ("PLT", "Platelets")),
    "psa": (("PSA", "Prostate specific antigen"),),
    "fit": (("FIT", "Faecal immunochemical test"),),
    **density.RNA_TESTS,
}
RESULT_UNITS: Final = {
    "HBA1C": "mmol/mol",
    "EGFR": "mL/min/1.73m2",
    "BMI": "kg/m2",
    "BP": "mmHg",
    "HB": "g/L",
    "WBC": "x10^9/L",
    "PLT": "x10^9/L",
    "PSA": "ug/L",
    "FIT": "ug/g",
    **density.RNA_UNITS,
}
PRIORITY: Final = {"routine": "R", "urgent": "U", "asap": "2WW"}
APPOINTMENT_STATUS: Final = {"booked": "BOOKED", "fulfilled": "ATTENDED", "cancelled": "CANCELLED", "noshow": "DNA"}


def uk_date(value: date) -> str:
    """dd/mm/yyyy.

    >>> uk_date(date(2026, 3, 4))
    '04/03/2026'
    """
    return value.strftime("%d/%m/%Y")


def uk_datetime(value: datetime) -> str:
    """dd/mm/yyyy HH:MM:SS (UTC)."""
    return value.strftime("%d/%m/%Y %H:%M:%S")


def to_rna(record: Record) -> Json:
    """The ``data`` object of a change for ``record``."""
    fact = record.fact
    if isinstance(fact, SourcePatient):
        return _patient(fact)
    base: Json = {f"{ENTITY[record.kind]}_id": record.id, "patient_id": record.patient_id}
    if isinstance(fact, Encounter):
        return {**base, **_encounter(fact, record.status)}
    if isinstance(fact, Condition):
        return {
            **base,
            "code": f"DX{fact.concept.code}",
            "description": fact.concept.display,
            "onset": uk_date(fact.onset),
            "status": "ACTIVE",
        }
    if isinstance(fact, Observation):
        return {**base, **_result(fact, record.part, record.status)}
    if isinstance(fact, Medication):
        return {
            **base,
            "drug_code": f"RX{fact.concept.code}",
            "drug_name": fact.concept.display,
            "start": uk_date(fact.authored),
            "status": "CURRENT" if fact.status == "active" else "COMPLETED",
        }
    if isinstance(fact, Allergy):
        return {
            **base,
            "allergen_code": f"AL{fact.concept.code}",
            "allergen": fact.concept.display,
            "recorded": uk_date(fact.recorded),
        }
    if isinstance(fact, Referral):
        return {**base, **_referral_like(record, fact)}
    raise ValueError(f"{record.kind} records are not part of RNA's feed")


def _patient(p: SourcePatient) -> Json:
    return {
        "patient_id": p.id,
        "nhs_no": p.nhs_number or "",
        "nhs_no_status": NHS_STATUS.get(p.nhs_status or "", ""),
        "surname": p.family.upper(),
        "forenames": p.given,
        "dob": uk_date(p.birth_date),
        "sex": {"male": "M", "female": "F"}.get(p.sex, "U"),
        "address1": p.address_line,
        "town": p.town,
        "postcode": p.postcode,
        "phone": p.phone,
        "ethnicity": ETHNICITY[p.ethnic_category],
        "gp_practice": "" if p.pseudonymous else p.gp_practice,
        "restricted": "Y" if p.restricted else "N",
        "shcr_objection": "Y" if p.objects_to_sharing else "N",
        "active": "Y" if p.active else "N",
        "merged_into": p.replaced_by,
    }


def _encounter(e: Encounter, status: str | None) -> Json:
    return {
        "type": ENCOUNTER_TYPE[e.kind],
        "adm_method": e.admission_method or "",
        "disch_method": e.discharge_method or "",
        "specialty": e.tfc or "",
        "start": uk_datetime(e.start),
        "end": uk_datetime(e.end),
        "status": "CANCELLED" if status == "cancelled" else "COMPLETE",
        "procedure_code": f"PR{e.procedure.code}" if e.procedure else "",
    }


def _result(o: Observation, part: int, status: str | None) -> Json:
    code, name = RESULT_CODES[o.kind][part]
    value = f"{o.values[0]:g}/{o.values[1]:g}" if o.kind == "bp" else f"{o.values[part]:g}"
    return {
        "test_code": code,
        "test_name": name,
        "value": value,
        "units": RESULT_UNITS[code],
        "taken": uk_datetime(o.effective),
        "status": "C" if status == "amended" else "F",
    }


TRIAGE_OUTCOME: Final = {"awaiting": "", "accepted": "ACCEPTED", "returned": "RETURNED", "redirected": "REDIRECTED"}


def _referral_like(record: Record, r: Referral) -> Json:
    if record.kind == "referral":
        closed = r.clock_stop or r.transferred_out or r.triage in ("returned", "redirected")
        return {
            "ubrn": r.ubrn,
            "specialty": r.network.name,
            "tfc": r.network.tfc or "",
            "priority": PRIORITY[r.priority],
            "sent": uk_date(r.authored),
            "received": uk_date(r.received or r.authored),
            "referrer_practice": r.requester,
            "reason_code": r.reason.code if r.reason else "",
            "reason": r.reason.display if r.reason else "",
            "triage_outcome": TRIAGE_OUTCOME[r.triage],
            "status": "CLOSED" if closed else "OPEN",
        }
    if record.kind == "pathway":
        end = r.transferred_out or r.clock_stop
        start = r.clock_start if r.transferred_in and r.clock_start else (r.received or r.authored)
        return {
            "ppi": r.ppi,
            "referral_id": record.refs[0],
            "tfc": r.network.tfc or "",
            "clock_start": uk_date(start),
            "clock_stop": uk_date(end) if end else "",
            "rtt_events": [{"status": code, "date": uk_date(day)} for day, code in r.events],
            "fds_date": uk_date(r.fds) if r.fds else "",
            "status": "STOPPED" if end else "WAITING",
        }
    assert r.appointment_start is not None
    return {
        "referral_id": record.refs[0],
        "clinic_date": uk_datetime(r.appointment_start),
        "cancelled_by": {"patient": "PATIENT", "provider": "HOSPITAL"}.get(r.cancelled_by or "", ""),
        "tfc": r.network.tfc or "",
        "status": APPOINTMENT_STATUS[record.status or "booked"],
    }
