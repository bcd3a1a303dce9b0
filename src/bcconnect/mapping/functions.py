"""The escape hatch: a small registry of named, pure functions a mapping rule may apply (``fn: uk_date``).

Each function takes the value the rule read (and optional string arguments from the rule) and returns the new
value, or None for "no value". It raises ``ValueError`` when the value cannot be converted; the engine turns
that into a MappingError naming the rule, source path, value and target. Functions must be pure: no clock, no
randomness, no I/O — so a re-ingest maps the same bytes to the same resources.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from bcconnect.fhir import nhs_number
from bcconnect.fhir.constants import mrn_system
from bcconnect.fhir.ukcore import VERIFICATION_DISPLAY, normalise_verification_status

MappingFunction = Callable[..., Any]

#: Every function a mapping file may name, by name.
REGISTRY: Final[dict[str, MappingFunction]] = {}

_LONDON: Final = ZoneInfo("Europe/London")


_F = TypeVar("_F", bound=MappingFunction)


def register(name: str) -> Callable[[_F], _F]:
    """Add a function to :data:`REGISTRY` under ``name`` (names are unique)."""

    def wrap(fn: _F) -> _F:
        if name in REGISTRY:
            raise RuntimeError(f"mapping function {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return wrap


_UK_DATE = re.compile(r"(?:(?:(\d{1,2})/)?(\d{1,2})/)?(\d{4})")
_ISO_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


@register("uk_date")
def uk_date(value: Any) -> str | None:
    """A UK date ``dd/mm/yyyy`` (or partial ``mm/yyyy``, ``yyyy``) as a FHIR date, keeping the precision.

    >>> uk_date("07/03/1961"), uk_date("3/1961"), uk_date("1961"), uk_date("1961-03-07"), uk_date("")
    ('1961-03-07', '1961-03', '1961', '1961-03-07', None)
    """
    text = str(value).strip()
    if not text:
        return None
    if _ISO_DATE.fullmatch(text):
        parts = [int(p) for p in text.split("-")]
        if len(parts) == 3:
            dt.date(*parts)  # raises ValueError for 1966-29-10
        elif len(parts) == 2 and not 1 <= parts[1] <= 12:
            raise ValueError("month out of range")
        return text
    match = _UK_DATE.fullmatch(text)
    if match is None:
        raise ValueError("expected a date as dd/mm/yyyy, mm/yyyy or yyyy")
    day, month, year = match.groups()
    if month is None:
        return year
    if not 1 <= int(month) <= 12:
        raise ValueError("month out of range")
    if day is None:
        return f"{year}-{int(month):02d}"
    dt.date(int(year), int(month), int(day))  # raises ValueError for 31/02
    return f"{year}-{int(month):02d}-{int(day):02d}"


@register("uk_datetime")
def uk_datetime(value: Any, zone: str = "Europe/London") -> str | None:
    """UK ``dd/mm/yyyy HH:MM[:SS]`` as a FHIR dateTime; the clock is ``zone`` (default Europe/London local).

    >>> uk_datetime("22/11/2026 10:05:00"), uk_datetime("01/07/2026 09:00"), uk_datetime("01/07/2026")
    ('2026-11-22T10:05:00+00:00', '2026-07-01T09:00:00+01:00', '2026-07-01')
    >>> uk_datetime("01/07/2026 09:00", "UTC")
    '2026-07-01T09:00:00+00:00'
    """
    text = str(value).strip()
    if not text:
        return None
    date_part, _, time_part = text.partition(" ")
    day = uk_date(date_part)
    if not time_part or day is None:
        return day
    if len(day) != 10:
        raise ValueError("a time needs a full date")
    try:
        clock = dt.time.fromisoformat(time_part.strip())
    except ValueError as exc:
        raise ValueError("expected a time as HH:MM or HH:MM:SS") from exc
    tz = _LONDON if zone == "Europe/London" else ZoneInfo(zone)
    moment = dt.datetime.combine(dt.date.fromisoformat(day), clock, tzinfo=tz)
    return moment.isoformat(timespec="seconds")


_HL7_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d+)?)?([+-]\d{4})?")


@register("hl7_date")
def hl7_date(value: Any) -> str | None:
    """An HL7 v2 DT/TS ``YYYY[MM[DD]]…`` as a FHIR date (time ignored, precision kept).

    >>> hl7_date("19610307"), hl7_date("196103"), hl7_date("1961"), hl7_date("20261122101500")
    ('1961-03-07', '1961-03', '1961', '2026-11-22')
    """
    text = str(value).strip()
    if not text:
        return None
    match = _HL7_TS.fullmatch(text)
    if match is None:
        raise ValueError("expected an HL7 date YYYY[MM[DD]]")
    year, month, day = match.group(1), match.group(2), match.group(3)
    if month is None:
        return year
    if day is None:
        return f"{year}-{month}"
    dt.date(int(year), int(month), int(day))
    return f"{year}-{month}-{day}"


@register("hl7_datetime")
def hl7_datetime(value: Any, zone: str = "Europe/London") -> str | None:
    """An HL7 v2 TS ``YYYYMMDD[HHMM[SS]][+ZZZZ]`` as a FHIR dateTime; without an offset the clock is ``zone``.

    >>> hl7_datetime("202611221015"), hl7_datetime("20260701091500+0100"), hl7_datetime("20260701")
    ('2026-11-22T10:15:00+00:00', '2026-07-01T09:15:00+01:00', '2026-07-01')
    >>> hl7_datetime("20260701091500", "UTC")
    '2026-07-01T09:15:00+00:00'
    """
    text = str(value).strip()
    if not text:
        return None
    match = _HL7_TS.fullmatch(text)
    if match is None:
        raise ValueError("expected an HL7 timestamp YYYYMMDD[HHMM[SS]][+ZZZZ]")
    year, month, day, hour, minute, second, offset = match.groups()
    if hour is None or day is None or month is None:
        return hl7_date(text[:8])
    tz: dt.tzinfo = _LONDON if zone == "Europe/London" else ZoneInfo(zone)
    if offset:
        sign = 1 if offset[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0), tzinfo=tz)
    return moment.isoformat(timespec="seconds")


@register("nhs_number")
def nhs_number_digits(value: Any) -> str | None:
    """An NHS number without the spaces or dashes people type (the validator checks Modulus 11).

    >>> nhs_number_digits("999 000 0018"), nhs_number_digits("")
    ('9990000018', None)
    """
    digits = nhs_number.normalise(str(value).strip())
    return digits or None


@register("verification_status")
def verification_status(value: Any) -> str | None:
    """Any NHS number verification status (England ``01``–``08`` or a retired kebab-case code) as ``01``–``08``.

    >>> verification_status("number-present-and-verified"), verification_status("2")
    ('01', '02')
    """
    text = str(value).strip()
    return normalise_verification_status(text) if text else None


_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})")


@register("postcode")
def postcode(value: Any) -> str | None:
    """A UK postcode in upper case with one space before the inward code; other text is kept as written.

    >>> postcode("wv10 0qp"), postcode("B711QQ"), postcode("BFPO 1")
    ('WV10 0QP', 'B71 1QQ', 'BFPO 1')
    """
    text = " ".join(str(value).split()).upper()
    if not text:
        return None
    match = _POSTCODE.fullmatch(text)
    return f"{match.group(1)} {match.group(2)}" if match else text


@register("trim")
def trim(value: Any) -> str | None:
    """Text with outer whitespace removed and inner runs collapsed; empty text is no value.

    >>> trim("  Mary   Ann "), trim("   ")
    ('Mary Ann', None)
    """
    text = " ".join(str(value).split())
    return text or None


@register("upper")
def upper(value: Any) -> str:
    """Upper-case text (codes sent in mixed case)."""
    return str(value).upper()


@register("lower")
def lower(value: Any) -> str:
    """Lower-case text (FHIR codes such as gender are lower case)."""
    return str(value).lower()


@register("split")
def split(value: Any, separator: str = " ") -> list[str]:
    """Text split on ``separator`` with empty parts dropped (``forenames`` → several ``given``).

    >>> split("Mary Ann"), split("a~b~", "~")
    (['Mary', 'Ann'], ['a', 'b'])
    """
    return [part.strip() for part in str(value).split(separator) if part.strip()]


@register("decimal")
def decimal(value: Any) -> int | float:
    """A number from text, kept an int when it has no fraction (``"5.4"`` → 5.4, ``"12"`` → 12).

    >>> decimal("5.4"), decimal("12"), decimal(7)
    (5.4, 12, 7)
    """
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, int | float):
        return value
    text = str(value).strip()
    try:
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    except ValueError as exc:
        raise ValueError("expected a number") from exc


@register("integer")
def integer(value: Any) -> int:
    """A whole number from text.

    >>> integer(" 3 ")
    3
    """
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ValueError("expected a whole number") from exc


@register("boolean")
def boolean(value: Any) -> bool:
    """A yes/no flag from the usual spellings (``Y``/``N``, ``true``/``false``, ``1``/``0``).

    >>> boolean("Y"), boolean("false"), boolean(True)
    (True, False, True)
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"y", "yes", "true", "1", "t"}:
        return True
    if text in {"n", "no", "false", "0", "f"}:
        return False
    raise ValueError("expected a yes/no flag (Y/N, true/false, 1/0)")


@register("local_reference_id")
def local_reference_id(value: Any) -> str:
    """The id part of a FHIR literal reference (``Patient/123`` → ``123``).

    >>> local_reference_id("Patient/123")
    '123'
    """
    return str(value).rsplit("/", 1)[-1]


@register("mrn_system")
def mrn_system_of(value: Any) -> str:
    """The trust-scoped MRN identifier system for an ODS code.

    >>> mrn_system_of("RBK")
    'https://fhir.rbk.nhs.uk/Id/mrn'
    """
    return mrn_system(str(value))


@register("verification_display")
def verification_display(value: Any) -> str | None:
    """The display text of an England NHS number verification code (after normalising it).

    >>> verification_display("number-present-and-verified")
    'Number present and verified'
    """
    code = verification_status(value)
    return VERIFICATION_DISPLAY[code] if code else None


@register("drop_extensions")
def drop_extensions(value: Any, prefix: str) -> Any:
    """``value`` without any extension whose url starts with ``prefix``, at any depth (vendor extensions).

    >>> drop_extensions({"a": 1, "extension": [{"url": "https://x.nhs.uk/E", "valueString": "v"}]}, "https://x")
    {'a': 1}
    """
    if isinstance(value, list):
        return [drop_extensions(item, prefix) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("extension", "modifierExtension") and isinstance(item, list):
            kept = [
                drop_extensions(e, prefix)
                for e in item
                if not (isinstance(e, dict) and str(e.get("url", "")).startswith(prefix))
            ]
            if kept:
                out[key] = kept
        else:
            out[key] = drop_extensions(item, prefix)
    return out


@register("drop_vendor")
def drop_vendor(value: Any, prefix: str) -> Any:
    """None for an extension whose url starts with ``prefix``; otherwise the value without such extensions.

    Use on copied ``extension`` lists so a vendor's own extensions never reach the shared record.

    >>> drop_vendor({"url": "https://fhir.rxk.nhs.uk/StructureDefinition/x"}, "https://fhir.rxk.nhs.uk/") is None
    True
    """
    if isinstance(value, dict) and str(value.get("url", "")).startswith(prefix):
        return None
    return drop_extensions(value, prefix)


@register("part")
def part(value: Any, separator: str, index: int | str) -> str | None:
    """The ``index``-th (0-based) piece of text split on ``separator`` (``120/80`` → ``120``), or no value.

    >>> part("120/80", "/", 1), part("120", "/", 1)
    ('80', None)
    """
    pieces = str(value).split(separator)
    i = int(index)
    return pieces[i].strip() or None if -len(pieces) <= i < len(pieces) else None


@register("attachment_by_reference")
def attachment_by_reference(value: Any) -> Any:
    """``value`` with every Attachment's inline ``data`` removed (documents are held by reference: ``url``,
    with ``contentType``, ``size``, ``hash`` and ``title`` kept), at any depth.

    >>> attachment_by_reference({"attachment": {"contentType": "text/plain", "data": "aGk=", "url": "Binary/1"}})
    {'attachment': {'contentType': 'text/plain', 'url': 'Binary/1'}}
    """
    if isinstance(value, list):
        return [attachment_by_reference(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {key: attachment_by_reference(item) for key, item in value.items() if key != "data"}
