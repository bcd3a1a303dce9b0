"""The public identifiers a trust's FHIR system writes on the wire: code systems, identifier systems, UK Core
profile and extension URLs, and the NHS number's Modulus 11 check digit.

The sandbox is the outside world and shares no code with the engine: like a real EPR, it knows these published
NHS and HL7 UK identifiers itself. The engine's tests check the two vocabularies agree, so a drift between what
the trusts send and what the engine expects fails a test instead of a demo.
"""

from __future__ import annotations

from typing import Final

V3_ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANIZATION_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER_SYSTEM: Final = "https://fhir.nhs.uk/Id/sds-user-id"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
LOINC_SYSTEM: Final = "http://loinc.org"
DMD_SYSTEM: Final = "https://dmd.nhs.uk"
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

#: Modulus 11 weights of an NHS number's first nine digits
_WEIGHTS: Final = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def mrn_system(ods_code: str) -> str:
    """The trust-scoped local MRN identifier system the trusts use.

    >>> mrn_system("RL4")
    'https://fhir.rl4.nhs.uk/Id/mrn'
    """
    return f"https://fhir.{ods_code.lower()}.nhs.uk/Id/mrn"


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when no valid NHS number has them.

    >>> check_digit("999000001")
    8
    >>> check_digit("123456789") is None  # remainder 1: check 10, never issued
    True
    """
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError(f"expected nine digits, got {len(first_nine)} characters")
    check = 11 - sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True)) % 11
    if check == 11:
        return 0
    return None if check == 10 else check
