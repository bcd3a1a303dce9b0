"""The README documents every adapter.toml key, and its worked example "add a fifth trust" loads."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

from bcconnect.config import AdapterConfig, SourceKind, load_adapter

README = Path(__file__).resolve().parents[3] / "README.md"


def _keys(cls: type, prefix: str = "") -> set[str]:
    """Every key an adapter file may hold, as the README writes it: ``name`` or ``[fetch] page_size``."""
    out: set[str] = set()
    for field in dataclasses.fields(cls):
        if field.name == "source_file":
            continue
        nested = field.default_factory if field.default_factory is not dataclasses.MISSING else None
        if nested is not None and dataclasses.is_dataclass(nested):
            out |= _keys(nested, f"[{field.name}] ")  # type: ignore[arg-type]
        else:
            out.add(prefix + field.name)
    return out


def _documented(text: str) -> set[str]:
    table = text.split("<!-- adapter-keys -->", 1)[1].split("<!-- /adapter-keys -->", 1)[0]
    found: set[str] = set()
    for line in table.splitlines()[3:]:
        cell = line.split("|")[1].strip()
        section = re.match(r"`\[(\w+)\] ", cell)
        for name in re.findall(r"`(?:\[\w+\] )?(\w+)`", cell):
            found.add(f"[{section.group(1)}] {name}" if section else name)
    return found


def test_every_adapter_key_is_in_the_readme_table() -> None:
    missing = _keys(AdapterConfig) - _documented(README.read_text(encoding="utf-8"))
    assert missing == set(), f"adapter keys the README does not document: {sorted(missing)}"


def test_the_guard_notices_an_undocumented_key() -> None:
    text = README.read_text(encoding="utf-8").replace("| `[fetch] resource_types` |", "| `[fetch] something_else` |")
    assert "[fetch] resource_types" in _keys(AdapterConfig) - _documented(text)


def test_the_fifth_trust_example_loads(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8").split("### Worked example: add a fifth trust", 1)[1]
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    path = tmp_path / "adapter.toml"
    path.write_text(textwrap.dedent(block.group(1)))
    config = load_adapter(path)
    assert config.kind is SourceKind.FHIR_API
    assert config.mapping_set == "uk-core-generic"
    assert config.base_url == "https://ehr.example-trust.nhs.uk/api/fhir"
    assert config.identifiers.mrn_system == "urn:oid:2.16.840.1.113883.2.1.99.1"
