"""Identifier systems, code systems and organisations that every layer shares.

Values come from the UK Core R4 package and the NHS Data Dictionary (see DOMAIN.md). Every engine package may
import this module; the sandbox keeps its own copy of the wire identifiers (``bcconnect_sandbox.wire``), checked
against these by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# --- identifier systems ---------------------------------------------------------------------------------
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANIZATION_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-site-code"
UBRN_SYSTEM: Final = "https://fhir.nhs.uk/Id/UBRN"
SDS_USER_SYSTEM: Final = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE_PROFILE_SYSTEM: Final = "https://fhir.nhs.uk/Id/sds-role-profile-id"

# --- code systems ---------------------------------------------------------------------------------------
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
LOINC_SYSTEM: Final = "http://loinc.org"
DMD_SYSTEM: Final = "https://dmd.nhs.uk"
V3_ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_ACT_REASON_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_ACT_CODE_SENSITIVITY_SYSTEM: Final = V3_ACT_CODE_SYSTEM

# --- UK Core --------------------------------------------------------------------------------------------
UKCORE_PROFILE_BASE: Final = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
UKCORE_EXTENSION_BASE: Final = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-"
NHS_NUMBER_VERIFICATION_EXTENSION: Final = UKCORE_EXTENSION_BASE + "NHSNumberVerificationStatus"
NHS_NUMBER_VERIFICATION_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
ETHNIC_CATEGORY_EXTENSION: Final = UKCORE_EXTENSION_BASE + "EthnicCategory"
ETHNIC_CATEGORY_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
ADMISSION_METHOD_EXTENSION: Final = UKCORE_EXTENSION_BASE + "AdmissionMethod"
ADMISSION_METHOD_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland"
DISCHARGE_METHOD_EXTENSION: Final = UKCORE_EXTENSION_BASE + "DischargeMethod"
DISCHARGE_METHOD_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeMethodEngland"

#: Verified NHS number: the only status trusted for deterministic linkage.
NHS_NUMBER_VERIFIED: Final = "01"

#: Admission methods that count as emergency admissions (NHS Data Dictionary).
EMERGENCY_ADMISSION_METHODS: Final = frozenset({"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"})
ELECTIVE_ADMISSION_METHODS: Final = frozenset({"11", "12", "13"})

# --- bcconnect's own systems ----------------------------------------------------------------------------
BCCONNECT_BASE: Final = "https://bcconnect.nhs.uk"
#: meta.tag system that carries the ODS code of the trust a resource came from.
SOURCE_ORG_TAG_SYSTEM: Final = ODS_ORGANIZATION_SYSTEM
#: meta.tag system carrying "mapping-id|version" of the mapping that produced a resource.
MAPPING_TAG_SYSTEM: Final = BCCONNECT_BASE + "/CodeSystem/mapping"
#: meta.tag system of what a mapping noticed about a resource (e.g. codes from a non-UK terminology).
MAPPING_FLAG_SYSTEM: Final = BCCONNECT_BASE + "/CodeSystem/mapping-flag"
#: the flag code: the resource's main code is from no UK terminology, so it claims the base R4 profile only.
NON_UK_TERMINOLOGY: Final = "non-uk-terminology"
#: code systems UK Core accepts for clinical codes (SNOMED CT, dm+d, LOINC, ICD-10, OPCS-4).
UK_CODE_SYSTEMS: Final = frozenset(
    {
        "http://snomed.info/sct",
        "https://dmd.nhs.uk",
        "http://loinc.org",
        "http://hl7.org/fhir/sid/icd-10",
        "https://fhir.nhs.uk/CodeSystem/OPCS-4",
    }
)
#: Identifier system of a golden (person-level) Patient.
PERSON_ID_SYSTEM: Final = BCCONNECT_BASE + "/Id/person"


def source_system(ods_code: str) -> str:
    """The base URI naming one trust's system: ids are minted from it and ``meta.source`` starts with it.

    >>> source_system("RL4")
    'https://fhir.rl4.nhs.uk'
    """
    return f"https://fhir.{ods_code.lower()}.nhs.uk"


def mrn_system(ods_code: str) -> str:
    """The trust-scoped local MRN system (our convention, see DOMAIN.md).

    >>> mrn_system("RL4")
    'https://fhir.rl4.nhs.uk/Id/mrn'
    """
    return f"https://fhir.{ods_code.lower()}.nhs.uk/Id/mrn"


@dataclass(frozen=True, slots=True)
class Trust:
    """One of the region's trusts: its ODS code, name and main site."""

    ods_code: str
    name: str
    short_name: str
    main_site: str


TRUSTS: Final = (
    Trust("RL4", "The Royal Wolverhampton NHS Trust", "Wolverhampton", "New Cross Hospital"),
    Trust("RBK", "Walsall Healthcare NHS Trust", "Walsall", "Manor Hospital"),
    Trust("RNA", "The Dudley Group NHS Foundation Trust", "Dudley", "Russells Hall Hospital"),
    Trust("RXK", "Sandwell and West Birmingham Hospitals NHS Trust", "Sandwell", "Sandwell General Hospital"),
)
TRUSTS_BY_ODS: Final = {t.ods_code: t for t in TRUSTS}
