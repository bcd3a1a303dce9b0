"""conformance/CHECKS.md lists exactly the registered checks (regenerate it when a check changes)."""

from __future__ import annotations

from pathlib import Path

from bcconnect.conformance._catalogue import catalogue_markdown
from bcconnect.conformance.packs import PACKS

CATALOGUE = Path(__file__).resolve().parents[2] / "conformance" / "CHECKS.md"


def test_the_catalogue_is_up_to_date() -> None:
    """Regenerate with: python -c "from bcconnect.conformance._catalogue import catalogue_markdown; ..."."""
    assert CATALOGUE.read_text(encoding="utf-8") == catalogue_markdown()


def test_every_check_has_an_id_title_spec_and_severity() -> None:
    """Each check is traceable: a unique id within its pack's prefix, a title, a URL and a section."""
    prefixes = {
        "server": ("srv.", "ig.", "ukcore."),
        "source-fhir": ("src-fhir.",),
        "source-json": ("src-json.",),
        "source-hl7": ("src-hl7.",),
    }
    ids = [c.id for p in PACKS.values() for c in p.checks]
    assert len(ids) == len(set(ids))
    for name, pack in PACKS.items():
        for c in pack.checks:
            assert c.id.startswith(prefixes[name]), c.id
            assert c.title
            assert c.spec.url
            assert c.spec.section
