"""Normalisation of the identity fields of a source Patient into comparable values.

Each function is small and pure; :func:`demographics` reads a stored FHIR Patient (the mapping's output) into a
frozen :class:`Demographics` that every later step (blocking, comparison, rules) works on. An NHS number that
fails Modulus 11 is treated as absent; retired kebab-case verification codes are read as the 01–08 codes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from bcconnect.fhir import nhs_number
from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFIED,
    SOURCE_ORG_TAG_SYSTEM,
    mrn_system,
)
from bcconnect.fhir.ukcore import normalise_verification_status
from bcconnect.identity._phonetic import double_metaphone

#: letters NFKD does not decompose into a base letter and a mark
_SPECIAL_LETTERS: Final = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "ı": "i"})
_TITLES: Final = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "rev", "sir", "master", "mx"})
#: groups of given names one person is commonly recorded under (formal name and its usual short forms)
_NAME_GROUPS: Final = (
    ("james", "jim", "jimmy", "jamie"),
    ("william", "bill", "billy", "will", "liam"),
    ("robert", "bob", "bobby", "rob", "robbie", "bert"),
    ("david", "dave", "davey"),
    ("thomas", "tom", "tommy"),
    ("daniel", "dan", "danny"),
    ("michael", "mick", "mike", "mickey"),
    ("richard", "dick", "rich", "richie", "rick"),
    ("stephen", "steve", "steven", "stevie"),
    ("anthony", "tony"),
    ("joseph", "joe", "joey"),
    ("christopher", "chris", "kit"),
    ("margaret", "maggie", "peggy", "meg", "madge"),
    ("elizabeth", "liz", "lizzie", "beth", "betty", "eliza"),
    ("susan", "sue", "susie"),
    ("patricia", "pat", "patsy", "trish"),
    ("jennifer", "jenny", "jen"),
    ("katherine", "kate", "katie", "kathy", "cathy", "catherine", "kathryn"),
    ("rebecca", "becky", "becca"),
    ("deborah", "debbie", "debra", "deb"),
    ("victoria", "vicky", "vicki", "tori"),
    ("samantha", "sam", "sammy"),
    ("samuel", "sam", "sammy"),
    ("alexandra", "alex", "sandra", "lexi"),
    ("alexander", "alex", "sandy"),
    ("mohammed", "muhammad", "mohammad", "mohamed", "mohd"),
    ("jacqueline", "jackie"),
    ("christine", "chris", "chrissie"),
    ("kenneth", "ken", "kenny"),
    ("harold", "harry"),
    ("henry", "harry", "hal"),
    ("edward", "ed", "eddie", "ted"),
    ("frederick", "fred", "freddie"),
    ("jessica", "jess", "jessie"),
    ("olivia", "liv"),
    ("katarzyna", "kasia"),
    ("malgorzata", "gosia"),
    ("rajinder", "raj"),
    ("oluwaseun", "seun"),
    ("joan", "joanie"),
    ("lily", "lillie"),
    ("amelia", "millie"),
    ("oliver", "ollie"),
    ("alfred", "alfie"),
    ("krzysztof", "chris"),
    ("kulwant", "kully"),
    ("tafadzwa", "tafa"),
)
_NAME_GROUP_OF: Final[dict[str, frozenset[int]]] = {}
for _index, _group in enumerate(_NAME_GROUPS):
    for _name in _group:
        _NAME_GROUP_OF[_name] = _NAME_GROUP_OF.get(_name, frozenset()) | {_index}
_POSTCODE: Final = re.compile(r"^([A-Z]{1,2}[0-9][0-9A-Z]?)([0-9][A-Z]{2})$")
_SEX: Final = {"male": "M", "m": "M", "female": "F", "f": "F", "other": "O", "o": "O"}


@dataclass(frozen=True, slots=True)
class Demographics:
    """The normalised identity fields of one source Patient (None: absent or unusable)."""

    patient_id: str
    ods_code: str | None = None
    nhs_number: str | None = None
    #: 01–08 (normalised); None when not stated
    verification: str | None = None
    mrn: str | None = None
    given: str | None = None
    family: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    postcode: str | None = None
    phone: str | None = None
    #: the id of the Patient this record was merged into (``Patient.link`` type ``replaced-by``)
    replaced_by: str | None = None

    @property
    def nhs_verified(self) -> bool:
        """True when the NHS number is present and verified (code 01): trusted for deterministic linkage."""
        return self.nhs_number is not None and self.verification == NHS_NUMBER_VERIFIED

    @property
    def given_keys(self) -> tuple[str, str]:
        """Double Metaphone keys of the given name."""
        return double_metaphone(self.given or "")

    @property
    def family_keys(self) -> tuple[str, str]:
        """Double Metaphone keys of the family name."""
        return double_metaphone(self.family or "")


def normalise_nhs_number(value: str | None) -> str | None:
    """Ten digits when ``value`` is a Modulus-11-valid NHS number, else None (an invalid number is absent).

    >>> normalise_nhs_number("999 000 0018"), normalise_nhs_number("9990000019")
    ('9990000018', None)
    """
    if not value:
        return None
    digits = nhs_number.normalise(value.strip())
    return digits if nhs_number.is_valid(digits) else None


def normalise_verification(code: str | None) -> str | None:
    """A verification status as its 01–08 code; retired kebab-case codes are translated, unknowns dropped.

    >>> normalise_verification("number-present-and-verified"), normalise_verification("1")
    ('01', '01')
    """
    if not code:
        return None
    try:
        return normalise_verification_status(code)  # the one code table (UK Core), shared with the mappings
    except ValueError:
        return None


def normalise_name(value: str | None) -> str | None:
    """Lower case ASCII letters only: accents folded, punctuation and spaces dropped.

    >>> normalise_name("  O'Néill "), normalise_name("Dudley-Smith"), normalise_name("Łukasz")
    ('oneill', 'dudleysmith', 'lukasz')
    """
    if not value:
        return None
    folded = unicodedata.normalize("NFKD", value.casefold().translate(_SPECIAL_LETTERS))
    letters = "".join(ch for ch in folded if "a" <= ch <= "z")
    return letters or None


def first_given(values: list[str]) -> str | None:
    """The first given name that is not a title (``["Mr", "John Paul"]`` → ``john``)."""
    for value in values:
        for token in value.replace(".", " ").split():
            name = normalise_name(token)
            if name and name not in _TITLES:
                return name
    return None


def same_given_name(a: str, b: str) -> bool:
    """True when two normalised given names are one name or usual forms of one name (Jim, James).

    >>> same_given_name("jim", "james"), same_given_name("sam", "samuel"), same_given_name("jim", "john")
    (True, True, False)
    """
    if a == b:
        return True
    groups = _NAME_GROUP_OF.get(a)
    return bool(groups and groups & _NAME_GROUP_OF.get(b, frozenset()))


def normalise_postcode(value: str | None) -> str | None:
    """A UK postcode in upper case with one space before the inward code; None when not postcode-shaped.

    >>> normalise_postcode(" wv10 1ab"), normalise_postcode("WV101AB"), normalise_postcode("nowhere")
    ('WV10 1AB', 'WV10 1AB', None)
    """
    if not value:
        return None
    compact = "".join(value.upper().split())
    match = _POSTCODE.match(compact)
    return f"{match.group(1)} {match.group(2)}" if match else None


def postcode_sector(postcode: str) -> str:
    """The sector of a normalised postcode: outward code and the inward digit (``WV10 1``)."""
    return postcode[:-2]


def postcode_district(postcode: str) -> str:
    """The district (outward code) of a normalised postcode (``WV10``)."""
    return postcode.split(" ", 1)[0]


def normalise_phone(value: str | None) -> str | None:
    """A UK phone number as national digits (``07700900123``); None when fewer than ten digits remain.

    >>> normalise_phone("+44 (0)7700 900123"), normalise_phone("07700-900123"), normalise_phone("123")
    ('07700900123', '07700900123', None)
    """
    if not value:
        return None
    digits = "".join(ch for ch in value if ch.isdigit())
    if digits.startswith("44"):
        digits = "0" + digits[2:].removeprefix("0")
    elif not digits.startswith("0"):
        digits = "0" + digits
    return digits if 10 <= len(digits) <= 11 else None


def normalise_sex(value: str | None) -> str | None:
    """``M``, ``F`` or ``O``; unknown or absent is None (it carries no evidence)."""
    return _SEX.get(value.strip().lower()) if value else None


def normalise_birth_date(value: str | None) -> date | None:
    """A full FHIR date (``YYYY-MM-DD``); partial dates carry too little to compare and are None."""
    if not value or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def demographics(patient: Mapping[str, Any], *, ods_code: str | None = None) -> Demographics:
    """Read the identity fields of a stored FHIR Patient (the mapping's shape) and normalise them."""
    ods = ods_code or _tag_ods(patient)
    nhs: str | None = None
    verification: str | None = None
    mrn: str | None = None
    for ident in patient.get("identifier") or ():
        system, value = ident.get("system"), ident.get("value")
        if system == NHS_NUMBER_SYSTEM and nhs is None:
            nhs = normalise_nhs_number(value)
            if nhs is not None:
                verification = _verification_of(ident)
        elif (
            isinstance(system, str)
            and value
            and mrn is None
            and ((ods is not None and system == mrn_system(ods)) or system.endswith("/Id/mrn"))
        ):
            mrn = str(value).strip().upper()
    names = [n for n in patient.get("name") or () if n.get("use") not in ("old", "anonymous")]
    name = next((n for n in names if n.get("use") in (None, "official", "usual")), names[0] if names else {})
    phone = next(
        (t.get("value") for t in patient.get("telecom") or () if t.get("system") == "phone" and t.get("value")),
        None,
    )
    addresses = [a for a in patient.get("address") or () if a.get("use") != "old"]
    postcode = next((normalise_postcode(a.get("postalCode")) for a in addresses if a.get("postalCode")), None)
    replaced_by = next(
        (
            _reference_id(link.get("other"))
            for link in patient.get("link") or ()
            if link.get("type") == "replaced-by" and _reference_id(link.get("other"))
        ),
        None,
    )
    return Demographics(
        patient_id=str(patient.get("id", "")),
        ods_code=ods,
        nhs_number=nhs,
        verification=verification,
        mrn=mrn,
        given=first_given(list(name.get("given") or ())),
        family=normalise_name(name.get("family")),
        birth_date=normalise_birth_date(patient.get("birthDate")),
        sex=normalise_sex(patient.get("gender")),
        postcode=postcode,
        phone=normalise_phone(phone),
        replaced_by=replaced_by,
    )


def _verification_of(identifier: Mapping[str, Any]) -> str | None:
    for ext in identifier.get("extension") or ():
        if ext.get("url") == NHS_NUMBER_VERIFICATION_EXTENSION:
            for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or ():
                code = normalise_verification(coding.get("code"))
                if code:
                    return code
    return None


def _tag_ods(patient: Mapping[str, Any]) -> str | None:
    for tag in (patient.get("meta") or {}).get("tag") or ():
        if tag.get("system") == SOURCE_ORG_TAG_SYSTEM and tag.get("code"):
            return str(tag["code"])
    return None


def _reference_id(other: Any) -> str | None:
    if not isinstance(other, Mapping):
        return None
    ref = other.get("reference")
    if isinstance(ref, str) and ref.startswith("Patient/"):
        return ref.split("/", 2)[1]
    return None
