"""Onboarding a trust starts with its source pack: each adapter README and the README's worked example say so
first, with a command for the right pack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACK_OF_KIND = {"fhir_api": "source-fhir", "json_api": "source-json", "hl7v2": "source-hl7"}


def first_section(markdown: str) -> tuple[str, str]:
    """The heading and body of the first ``##`` section."""
    found = re.search(r"^## (.+?)\n(.*?)(?=^## |\Z)", markdown, flags=re.MULTILINE | re.DOTALL)
    assert found, "no ## section"
    return found.group(1), found.group(2)


def adapter_kind(folder: Path) -> str:
    found = re.search(r'^kind = "([a-z0-9_]+)"', (folder / "adapter.toml").read_text(encoding="utf-8"), re.MULTILINE)
    assert found, folder
    return found.group(1)


@pytest.mark.parametrize(
    "folder", sorted(p.parent for p in (ROOT / "adapters").glob("*/README.md")), ids=lambda p: p.name
)
def test_an_adapter_readme_opens_with_its_source_pack(folder: Path) -> None:
    heading, body = first_section((folder / "README.md").read_text(encoding="utf-8"))
    assert "source pack" in heading.lower(), heading
    pack = PACK_OF_KIND.get(adapter_kind(folder))
    assert pack, f"{folder.name}: no source pack for kind {adapter_kind(folder)}"
    assert f"bcconnect conformance run --pack {pack} " in body, body


def test_the_worked_example_starts_with_the_source_pack() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme[readme.index("### Worked example: add a fifth trust") :]
    first_step = example[example.index("\n1. ") : example.index("\n2. ")]
    assert "bcconnect conformance run --pack source-fhir" in first_step
