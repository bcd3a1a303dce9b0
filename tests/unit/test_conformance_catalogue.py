"""conformance/CHECKS.md lists exactly the registered checks (regenerate it when a check changes)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from bcconnect.conformance import Pack, Severity
from bcconnect.conformance._catalogue import catalogue_markdown
from bcconnect.conformance._catalogue_file import catalogue_file_name, load_catalogue, parse_catalogue
from bcconnect.conformance._context import Context
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


# --- the catalogue files: one source of truth, read strictly ---------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "bcconnect" / "conformance" / "packs"

GOOD = """
[pack]
name = "demo"
title = "A pack"
description = "What it proves."

[[check]]
id = "demo.one"
title = "One"
severity = "error"
spec = "https://hl7.org/fhir/R4/http.html#read"
section = "3.1.0.1 read"
description = "Reads one thing."
"""


def test_each_pack_is_read_from_its_catalogue_file() -> None:
    """Every check's id, title, severity, spec and description come from the pack's TOML, in its order."""
    for name, pack in PACKS.items():
        catalogue = load_catalogue(name)
        assert [c.id for c in pack.checks] == list(catalogue.entries), name
        for c in pack.checks:
            entry = catalogue.entries[c.id]
            assert (c.title, c.severity, c.spec, c.description) == (
                entry.title,
                entry.severity,
                entry.spec,
                entry.description,
            )


def test_the_catalogue_files_have_one_home_and_ship_with_the_package() -> None:
    """The TOML beside the check functions is the only copy (conformance/ documents it), and the wheel's
    package-data patterns take it."""
    shipped = sorted(p.name for p in PACKAGE_DIR.glob("*.toml"))
    assert shipped == sorted(catalogue_file_name(name) for name in PACKS)
    elsewhere = [
        p
        for p in ROOT.rglob("*.toml")
        if ".venv" not in p.parts
        and p.parent != PACKAGE_DIR
        and "[[check]]" in p.read_text(encoding="utf-8", errors="replace")
    ]
    assert not elsewhere, f"a second copy of a pack catalogue: {elsewhere}"
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["bcconnect"]
    relative = PACKAGE_DIR.relative_to(ROOT / "src" / "bcconnect")
    for name in shipped:
        assert any(fnmatch.fnmatch(str(relative / name), pattern) for pattern in patterns), name
    assert "packs/<pack>.toml" in (ROOT / "conformance" / "README.md").read_text(encoding="utf-8")


def test_a_good_catalogue_parses() -> None:
    catalogue = parse_catalogue(GOOD, source="demo.toml")
    assert catalogue.name == "demo"
    assert list(catalogue.entries) == ["demo.one"]
    assert catalogue.entries["demo.one"].severity is Severity.ERROR


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('severity = "error"', 'severity = "fatal"'), "severity 'fatal'"),
        (lambda t: t.replace('severity = "error"', 'severity = "error"\nseverty = "x"'), "unknown keys"),
        (lambda t: t + t[t.index("[[check]]") :], "listed twice"),
        (lambda t: t.replace('spec = "https://', 'spec = "ftp://'), "spec must be"),
        (lambda t: t.replace('description = "Reads one thing."', 'description = ""'), "description must be"),
        (lambda t: t.replace("[pack]", "[pak]"), "no [pack] table"),
        (lambda t: t[: t.index("[[check]]")], "no [[check]] entries"),
    ],
)
def test_a_broken_catalogue_is_refused_naming_the_file(edit: Callable[[str], str], message: str) -> None:
    """A typo never becomes a silently missing or mis-graded check."""
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_catalogue(edit(GOOD), source="demo.toml")
    assert "demo.toml" in str(caught.value)


def test_functions_and_entries_must_pair_up() -> None:
    """A function for an id the catalogue lacks, an id registered twice, an entry without a function: refused."""
    pack = Pack(parse_catalogue(GOOD, source="demo.toml"))

    async def run(ctx: Context) -> str:
        return "ok"

    with pytest.raises(LookupError, match=r"no check function for demo\.one"):
        _ = pack.checks
    with pytest.raises(ValueError, match="not in the catalogue"):
        pack.check("demo.two")(run)
    pack.check("demo.one")(run)
    with pytest.raises(ValueError, match="registered twice"):
        pack.check("demo.one")(run)
    assert [c.id for c in pack.checks] == ["demo.one"]
