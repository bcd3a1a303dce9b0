"""Content negotiation (``_format``, ``Accept``), ``_pretty``, ``_summary``/``_elements`` subsetting, gzip."""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import orjson

from bcconnect.errors import NotAcceptable
from bcconnect.view import Summary, registry

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_NAMES = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir"})
#: bodies smaller than this are not worth compressing
GZIP_MIN_BYTES = 1024
_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_ALWAYS = ("resourceType", "id", "meta")


def check_format(format_param: str | None, accept: str | None) -> None:
    """Refuse (406) a request for anything but FHIR JSON."""
    if format_param is not None:
        name = format_param.split(";")[0].strip().lower()
        if name in _JSON_NAMES:
            return
        raise NotAcceptable(f"_format={format_param!r}: this server produces application/fhir+json only")
    if not accept:
        return
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if any(t in _JSON_NAMES or t in ("*/*", "application/*") for t in types):
        return
    raise NotAcceptable(f"Accept: {accept!r}: this server produces application/fhir+json only")


def pretty(body: bytes) -> bytes:
    """Re-indent JSON for humans (``_pretty=true``)."""
    return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)


def _tagged(resource: dict[str, object]) -> dict[str, object]:
    meta = dict(resource.get("meta") or {})  # type: ignore[call-overload]
    tags = list(meta.get("tag") or [])
    tags.append(_SUBSETTED)
    meta["tag"] = tags
    resource["meta"] = meta
    return resource


def subset(body: bytes, *, summary: Summary | None, elements: Iterable[str] | None) -> bytes:
    """Apply ``_summary`` (true, text, data) or ``_elements`` to one stored resource, tagging it SUBSETTED."""
    if summary in (None, Summary.FALSE, Summary.COUNT) and elements is None:
        return body
    resource = orjson.loads(body)
    rtype = resource.get("resourceType", "")
    keep: set[str]
    if summary is Summary.TRUE:
        keep = set(registry().summary.get(rtype, frozenset())) | set(_ALWAYS)
    elif summary is Summary.TEXT:
        keep = {*_ALWAYS, "text"}
    elif summary is Summary.DATA:
        keep = set(resource) - {"text"}
    else:
        keep = {*_ALWAYS, *(elements or ())}
        # a choice element named without its type (value) keeps valueQuantity, valueString …
        keep |= {k for k in resource for e in elements or () if k.startswith(e) and k[len(e) : len(e) + 1].isupper()}
    trimmed = {k: v for k, v in resource.items() if k in keep}
    return orjson.dumps(_tagged(trimmed))


def maybe_gzip(body: bytes, accept_encoding: str | None) -> tuple[bytes, bool]:
    """Gzip ``body`` when the client accepts it and it is large enough; returns (body, compressed)."""
    if not accept_encoding or len(body) < GZIP_MIN_BYTES:
        return body, False
    codings = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    if "gzip" not in codings:
        return body, False
    return gzip.compress(body, compresslevel=5), True
