"""Read a pack's catalogue: the TOML file beside its check functions, shipped as package data.

The catalogue is the one place a check's id, title, severity, specification reference and description are
written (``bcconnect/conformance/packs/<pack>.toml``); ``conformance/CHECKS.md`` and ``bcconnect conformance
list`` are generated from it. A file that is not what this reader expects is refused whole, naming the file
and the entry, so a typo never turns into a silently missing or mis-graded check::

    [pack]
    name = "server"
    title = "FHIR R4 server"
    description = "…"

    [[check]]
    id = "srv.read"
    title = "Read returns the resource with id, meta.versionId and a matching ETag"
    severity = "error"                      # error | warning | info
    spec = "https://hl7.org/fhir/R4/http.html#read"    # or a contract of this project: docs/….md#anchor
    section = "3.1.0.1 read; 3.1.0.5 versioning (ETag)"
    description = "Reads the sample Patient: …"
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from bcconnect.conformance._model import CatalogueEntry, PackCatalogue, Severity, Spec

#: the package whose data files hold the catalogues
CATALOGUE_PACKAGE = "bcconnect.conformance.packs"
_PACK_KEYS = frozenset({"name", "title", "description"})
_CHECK_KEYS = frozenset({"id", "title", "severity", "spec", "section", "description"})


def catalogue_file_name(pack: str) -> str:
    """The file name of pack ``pack``'s catalogue (``source-fhir`` → ``source_fhir.toml``)."""
    return f"{pack.replace('-', '_')}.toml"


def load_catalogue(pack: str) -> PackCatalogue:
    """The catalogue of pack ``pack``, read from the package data."""
    name = catalogue_file_name(pack)
    text = resources.files(CATALOGUE_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    found = parse_catalogue(text, source=name)
    if found.name != pack:
        raise ValueError(f"{name}: [pack] name is {found.name!r}, expected {pack!r}")
    return found


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key} must be a non-empty string")
    return value


def parse_catalogue(text: str, *, source: str) -> PackCatalogue:
    """Parse a catalogue's TOML ``text`` (``source`` names it in errors)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not TOML: {exc}") from exc
    pack = document.get("pack")
    if not isinstance(pack, dict):
        raise ValueError(f"{source}: no [pack] table")
    if unknown := set(pack) - _PACK_KEYS:
        raise ValueError(f"{source}: [pack] has unknown keys {sorted(unknown)}")
    if unknown := set(document) - {"pack", "check"}:
        raise ValueError(f"{source}: unknown tables {sorted(unknown)}")
    checks = document.get("check")
    if not isinstance(checks, list) or not checks:
        raise ValueError(f"{source}: no [[check]] entries")
    entries: dict[str, CatalogueEntry] = {}
    for number, table in enumerate(checks, start=1):
        where = f"{source}: check {number}"
        if unknown := set(table) - _CHECK_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        check_id = _text(table, "id", where)
        where = f"{source}: check {check_id}"
        if check_id in entries:
            raise ValueError(f"{where}: the id is listed twice")
        severity_text = _text(table, "severity", where)
        try:
            severity = Severity(severity_text)
        except ValueError:
            raise ValueError(
                f"{where}: severity {severity_text!r} is not one of {', '.join(s.value for s in Severity)}"
            ) from None
        url = _text(table, "spec", where)
        # a published specification (https) or, where none exists, the project's own published contract
        if not (url.startswith("https://") or ("://" not in url and url.split("#")[0].endswith(".md"))):
            raise ValueError(f"{where}: spec must be an https URL or a document of this project, got {url!r}")
        entries[check_id] = CatalogueEntry(
            check_id,
            _text(table, "title", where),
            Spec(url, _text(table, "section", where)),
            severity,
            _text(table, "description", where),
        )
    return PackCatalogue(
        _text(pack, "name", f"{source}: [pack]"),
        _text(pack, "title", f"{source}: [pack]"),
        _text(pack, "description", f"{source}: [pack]"),
        entries,
        source,
    )
