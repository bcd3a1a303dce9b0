"""Source records as FHIR R4 resources (UK Core shaped), as RL4 serves them; RXK adds its quirks on top."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from bcconnect_sandbox import density
from bcconnect_sandbox import reference as ref
from bcconnect_sandbox import wire as c
from bcconnect_sandbox.population import (
    Allergy,
    Condition,
    Encounter,
    Medication,
    Observation,
)
from bcconnect_sandbox.referrals import Referral
from bcconnect_sandbox.sources import Record, SourcePatient, StaticFact

Json = dict[str, object]

TREATMENT_FUNCTION_SYSTEM: Final = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-TreatmentFunction"
PRACTICE_SETTING_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-PracticeSettingCode"
UBRN_SYSTEM: Final = "https://fhir.nhs.uk/Id/UBRN"
#: the patient pathway identifier (for e-RS referrals: the first referral's UBRN, issued by X09)
PPI_SYSTEM: Final = "https://fhir.nhs.uk/Id/patient-pathway-identifier"
#: the provider's triage decision (e-RS review outcome codes; REDIRECTED = sent on to another provider)
REVIEW_OUTCOME_EXTENSION: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-eRS-ReviewOutcome"
REVIEW_OUTCOME_SYSTEM: Final = "https://fhir.nhs.uk/CodeSystem/eRS-ReviewOutcome"
REVIEW_OUTCOMES: Final = {
    "accepted": "ACCEPT_REFER_BOOK_LATER",
    "returned": "RETURN_TO_REFERRER_WITH_ADVICE",
    "redirected": "REDIRECTED",
}
#: RTT period status events the provider recorded (code + date), on the pathway (EpisodeOfCare)
RTT_EVENT_EXTENSION: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-RTT-PeriodStatusEvent"
RTT_STATUS_SYSTEM: Final = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-RTTPeriodStatus"
#: cancer pathway: the date the patient was told they have cancer or it was ruled out (28-day standard)
FDS_EXTENSION: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-Cancer-FasterDiagnosisDate"
APPOINTMENT_CANCELLED_BY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
RESOURCE_TYPE: Final = {
    "patient": "Patient",
    "consent": "Consent",
    "condition": "Condition",
    "allergy": "AllergyIntolerance",
    "medication": "MedicationRequest",
    "encounter": "Encounter",
    "procedure": "Procedure",
    "observation": "Observation",
    "report": "DiagnosticReport",
    "referral": "ServiceRequest",
    "pathway": "EpisodeOfCare",
    "appointment": "Appointment",
    "organization": "Organization",
    "practitioner": "Practitioner",
}
KIND_OF_TYPE: Final = {v: k for k, v in RESOURCE_TYPE.items()}
_ENCOUNTER_CLASS: Final = {
    "ae": ("EMER", "emergency"),
    "emergency": ("IMP", "inpatient encounter"),
    "elective": ("IMP", "inpatient encounter"),
    "outpatient": ("AMB", "ambulatory"),
    "sexual_health": ("AMB", "ambulatory"),
}
_VERIFICATION_DISPLAY: Final = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS number or patient detail conflict)",
}
_OBSERVATIONS: Final = {
    "hba1c": (ref.OBS_HBA1C,),
    "egfr": (ref.OBS_EGFR,),
    "bmi": (ref.OBS_BMI,),
    "fbc": (ref.OBS_HB, ref.OBS_WBC, ref.OBS_PLT),
    "psa": (ref.OBS_PSA,),
    "fit": (ref.OBS_FIT,),
    **density.ANALYTES,
}


def instant(moment: datetime) -> str:
    """FHIR instant in UTC with millisecond precision (``meta.lastUpdated``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def date_time(moment: datetime) -> str:
    """FHIR dateTime in UTC, to the second."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def coding(system: str, concept: ref.Concept) -> Json:
    """A CodeableConcept with one coding."""
    return {"coding": [{"system": system, "code": concept.code, "display": concept.display}], "text": concept.display}


def to_fhir(record: Record, trust: str, version: int, last_updated: datetime) -> Json:
    """The FHIR resource for ``record`` at ``version``."""
    kind = record.kind
    body = _RENDERERS[kind](record, trust)
    meta: Json = {"versionId": str(version), "lastUpdated": instant(last_updated)}
    if isinstance(record.fact, SourcePatient) and kind == "patient":
        meta["profile"] = [c.UKCORE_PROFILE_BASE + "Patient"]
        if record.fact.restricted:
            meta["security"] = [{"system": c.V3_CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}]
    return {"resourceType": RESOURCE_TYPE[kind], "id": record.id, "meta": meta, **body}


def _subject(record: Record) -> Json:
    return {"reference": f"Patient/{record.patient_id}"}


def _org(code: str) -> Json:
    return {"identifier": {"system": c.ODS_ORGANIZATION_SYSTEM, "value": code}}


def _patient(record: Record, trust: str) -> Json:
    p = record.fact
    assert isinstance(p, SourcePatient)
    identifiers: list[Json] = []
    if p.nhs_number is not None:
        nhs: Json = {"system": c.NHS_NUMBER_SYSTEM, "value": p.nhs_number}
        if p.nhs_status is not None:
            nhs["extension"] = [
                {
                    "url": c.NHS_NUMBER_VERIFICATION_EXTENSION,
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": c.NHS_NUMBER_VERIFICATION_SYSTEM,
                                "code": p.nhs_status,
                                "display": _VERIFICATION_DISPLAY[p.nhs_status],
                            }
                        ]
                    },
                }
            ]
        identifiers.append(nhs)
    identifiers.append({"system": c.mrn_system(trust), "value": p.id})
    body: Json = {
        "extension": [
            {
                "url": c.ETHNIC_CATEGORY_EXTENSION,
                "valueCodeableConcept": {"coding": [{"system": c.ETHNIC_CATEGORY_SYSTEM, "code": p.ethnic_category}]},
            }
        ],
        "identifier": identifiers,
        "active": p.active,
        "name": [{"use": "official", "family": p.family, "given": p.given.split()}],
        "gender": p.sex,
        "birthDate": p.birth_date.isoformat(),
    }
    if p.phone:
        body["telecom"] = [{"system": "phone", "value": p.phone, "use": "mobile"}]
    if p.postcode:
        body["address"] = [{"use": "home", "line": [p.address_line], "city": p.town, "postalCode": p.postcode}]
    if not p.pseudonymous:
        body["generalPractitioner"] = [{**_org(p.gp_practice), "reference": f"Organization/{p.gp_practice}"}]
    if p.replaced_by:
        body["link"] = [{"other": {"reference": f"Patient/{p.replaced_by}"}, "type": "replaced-by"}]
    elif p.replaces:
        body["link"] = [{"other": {"reference": f"Patient/{p.replaces}"}, "type": "replaces"}]
    return body


def _consent(record: Record, trust: str) -> Json:
    """The GP objection register of RL4's integrated practices: the patient declines the shared record."""
    p = record.fact
    assert isinstance(p, SourcePatient)
    return {
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [
            {
                "coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Consent Document"}],
                "text": "Shared care record objection",
            }
        ],
        "patient": _subject(record),
        "organization": [{**_org(p.gp_practice), "reference": f"Organization/{p.gp_practice}"}],
        "policyRule": {"text": "Objection to the shared care record, recorded by the GP practice"},
        "provision": {"type": "deny"},
    }


def _condition(record: Record, trust: str) -> Json:
    cond = record.fact
    assert isinstance(cond, Condition)
    return {
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": record.status or "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}
                ]
            }
        ],
        "code": coding(c.SNOMED_SYSTEM, cond.concept),
        "subject": _subject(record),
        "onsetDateTime": cond.onset.isoformat(),
        "recordedDate": cond.onset.isoformat(),
    }


def _allergy(record: Record, trust: str) -> Json:
    allergy = record.fact
    assert isinstance(allergy, Allergy)
    return {
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}
            ]
        },
        "verificationStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}
            ]
        },
        "code": coding(c.SNOMED_SYSTEM, allergy.concept),
        "patient": _subject(record),
        "recordedDate": allergy.recorded.isoformat(),
    }


def _medication(record: Record, trust: str) -> Json:
    med = record.fact
    assert isinstance(med, Medication)
    return {
        "status": record.status or "active",
        "intent": "order",
        "medicationCodeableConcept": coding(c.DMD_SYSTEM, med.concept),
        "subject": _subject(record),
        "authoredOn": med.authored.isoformat(),
        "dosageInstruction": [{"text": "As directed"}],
        "substitution": {"allowedBoolean": True},
    }


def _encounter(record: Record, trust: str) -> Json:
    enc = record.fact
    assert isinstance(enc, Encounter)
    code, display = _ENCOUNTER_CLASS[enc.kind]
    body: Json = {
        "status": record.status or "finished",
        "class": {"system": c.V3_ACT_CODE_SYSTEM, "code": code, "display": display},
        "subject": _subject(record),
        "period": {"start": date_time(enc.start), "end": date_time(enc.end)},
        "serviceProvider": {**_org(trust), "reference": f"Organization/{trust}"},
    }
    if enc.tfc is not None:
        body["serviceType"] = {"coding": [{"system": TREATMENT_FUNCTION_SYSTEM, "code": enc.tfc}]}
    if enc.admission_method is not None:
        body["hospitalization"] = {
            "extension": [
                {
                    "url": c.ADMISSION_METHOD_EXTENSION,
                    "valueCodeableConcept": {
                        "coding": [{"system": c.ADMISSION_METHOD_SYSTEM, "code": enc.admission_method}]
                    },
                }
            ]
        }
    if enc.discharge_method is not None:
        body["extension"] = [
            {
                "url": c.DISCHARGE_METHOD_EXTENSION,
                "valueCodeableConcept": {
                    "coding": [{"system": c.DISCHARGE_METHOD_SYSTEM, "code": enc.discharge_method}]
                },
            }
        ]
    return body


def _procedure(record: Record, trust: str) -> Json:
    enc = record.fact
    assert isinstance(enc, Encounter)
    assert enc.procedure is not None
    return {
        "status": "completed",
        "code": coding(c.SNOMED_SYSTEM, enc.procedure),
        "subject": _subject(record),
        "encounter": {"reference": f"Encounter/{record.refs[0]}"},
        "performedDateTime": date_time(enc.start),
    }


def _observation(record: Record, trust: str) -> Json:
    obs = record.fact
    assert isinstance(obs, Observation)
    body: Json = {
        "status": record.status or "final",
        "subject": _subject(record),
        "effectiveDateTime": date_time(obs.effective),
        "issued": instant(obs.effective),
    }
    if obs.kind == "bp":
        body["category"] = [_category("vital-signs")]
        body["code"] = coding(c.LOINC_SYSTEM, ref.OBS_BP)
        body["component"] = [
            {"code": coding(c.LOINC_SYSTEM, concept), "valueQuantity": _quantity(value, "mm[Hg]")}
            for concept, value in ((ref.OBS_SYSTOLIC, obs.values[0]), (ref.OBS_DIASTOLIC, obs.values[1]))
        ]
        return body
    concept, _, unit = _OBSERVATIONS[obs.kind][record.part]
    body["category"] = [_category("vital-signs" if obs.kind in density.VITAL_SIGNS else "laboratory")]
    body["code"] = coding(c.LOINC_SYSTEM, concept)
    body["valueQuantity"] = _quantity(obs.values[record.part], unit)
    return body


def _category(code: str) -> Json:
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}


def _quantity(value: float, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def _report(record: Record, trust: str) -> Json:
    obs = record.fact
    assert isinstance(obs, Observation)
    return {
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "HM" if obs.kind == "fbc" else "CH",
                    }
                ]
            }
        ],
        "code": coding(c.LOINC_SYSTEM, density.PANELS[obs.kind]),
        "subject": _subject(record),
        "effectiveDateTime": date_time(obs.effective),
        "issued": instant(obs.effective),
        "result": [{"reference": f"Observation/{rid}"} for rid in record.refs],
    }


def _service_codes(referral: Referral) -> Json:
    """TFC and main specialty (UK Core PracticeSettingCode) of the service referred to."""
    concept: Json = {"text": referral.network.name}
    tfc = referral.network.tfc
    if tfc is not None:
        concept["coding"] = [
            {"system": TREATMENT_FUNCTION_SYSTEM, "code": tfc},
            {"system": PRACTICE_SETTING_SYSTEM, "code": ref.MAIN_SPECIALTY_OF_TFC.get(tfc, tfc)},
        ]
    return concept


def _referral_status(referral: Referral) -> str:
    if referral.triage in ("returned", "redirected") or referral.transferred_out is not None:
        return "revoked"
    return "completed" if referral.clock_stop else "active"


def _referral(record: Record, trust: str) -> Json:
    referral = record.fact
    assert isinstance(referral, Referral)
    body: Json = {
        "identifier": [{"system": UBRN_SYSTEM, "value": referral.ubrn}],
        "status": record.status or _referral_status(referral),
        "intent": "order",
        "priority": referral.priority,
        "code": coding(c.SNOMED_SYSTEM, ref.Concept("3457005", "Patient referral")),
        "subject": _subject(record),
        "authoredOn": referral.authored.isoformat(),
        "occurrenceDateTime": (referral.received or referral.authored).isoformat(),
        "performerType": _service_codes(referral),
        "requester": _org(referral.requester or referral.trust),
        "performer": [_org(referral.trust)],
    }
    if referral.reason is not None:
        body["reasonCode"] = [coding(c.SNOMED_SYSTEM, referral.reason)]
    if referral.triage in REVIEW_OUTCOMES:
        body["extension"] = [
            {
                "url": REVIEW_OUTCOME_EXTENSION,
                "valueCoding": {"system": REVIEW_OUTCOME_SYSTEM, "code": REVIEW_OUTCOMES[referral.triage]},
            }
        ]
    return body


def _pathway(record: Record, trust: str) -> Json:
    referral = record.fact
    assert isinstance(referral, Referral)
    period: Json = {"start": (referral.received or referral.authored).isoformat()}
    if referral.transferred_in and referral.clock_start is not None:
        period["start"] = referral.clock_start.isoformat()  # the clock came with the pathway
    end = referral.transferred_out or referral.clock_stop
    if end is not None:
        period["end"] = end.isoformat()
    extensions: list[Json] = [
        {
            "url": RTT_EVENT_EXTENSION,
            "extension": [
                {"url": "code", "valueCoding": {"system": RTT_STATUS_SYSTEM, "code": code}},
                {"url": "date", "valueDate": day.isoformat()},
            ],
        }
        for day, code in referral.events
    ]
    if referral.fds is not None:
        extensions.append({"url": FDS_EXTENSION, "valueDate": referral.fds.isoformat()})
    body: Json = {
        "identifier": [
            {
                "system": PPI_SYSTEM,
                "value": referral.ppi,
                "assigner": {"identifier": {"system": c.ODS_ORGANIZATION_SYSTEM, "value": "X09"}},
            },
            {"system": f"https://fhir.{trust.lower()}.nhs.uk/Id/pathway", "value": record.id},
        ],
        "status": "finished" if end is not None else "waitlist" if referral.triage == "awaiting" else "active",
        "type": [{"text": "Referral to treatment pathway"}, _service_codes(referral)],
        "patient": _subject(record),
        "managingOrganization": {**_org(trust), "reference": f"Organization/{trust}"},
        "period": period,
        "referralRequest": [{"reference": f"ServiceRequest/{record.refs[0]}"}],
    }
    if extensions:
        body["extension"] = extensions
    return body


def _appointment(record: Record, trust: str) -> Json:
    referral = record.fact
    assert isinstance(referral, Referral)
    assert referral.appointment_start is not None
    body: Json = {
        "status": record.status or referral.appointment_status,
        "basedOn": [{"reference": f"ServiceRequest/{record.refs[0]}"}],
        "start": date_time(referral.appointment_start),
        "participant": [{"actor": _subject(record), "status": "accepted"}],
    }
    if referral.network.tfc is not None:
        body["serviceType"] = [{"coding": [{"system": TREATMENT_FUNCTION_SYSTEM, "code": referral.network.tfc}]}]
    if (record.status or referral.appointment_status) == "cancelled" and referral.cancelled_by is not None:
        code = "pat" if referral.cancelled_by == "patient" else "prov"
        body["cancelationReason"] = {"coding": [{"system": APPOINTMENT_CANCELLED_BY_SYSTEM, "code": code}]}
    return body


def _organization(record: Record, trust: str) -> Json:
    fact = record.fact
    assert isinstance(fact, StaticFact)
    return {
        "identifier": [{"system": c.ODS_ORGANIZATION_SYSTEM, "value": fact.code}],
        "active": True,
        "name": fact.name,
    }


def _practitioner(record: Record, trust: str) -> Json:
    fact = record.fact
    assert isinstance(fact, StaticFact)
    return {
        "identifier": [{"system": c.SDS_USER_SYSTEM, "value": fact.code}],
        "name": [{"family": fact.name, "prefix": ["Dr"]}],
    }


_RENDERERS: Final = {
    "patient": _patient,
    "consent": _consent,
    "condition": _condition,
    "allergy": _allergy,
    "medication": _medication,
    "encounter": _encounter,
    "procedure": _procedure,
    "observation": _observation,
    "report": _report,
    "referral": _referral,
    "pathway": _pathway,
    "appointment": _appointment,
    "organization": _organization,
    "practitioner": _practitioner,
}
