"""Facts that used to live in two places live in one: the TOML reader, the NHS number verification code table,
and the trusts' adapter settings (in ``adapters/<trust>/adapter.toml``, not in the demo). Each guard is shown to
fail on an injected second copy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from support.import_contract import ENGINE_SRC

#: fact → (the one module allowed to hold it, a pattern that finds a copy)
FACTS: dict[str, tuple[str, re.Pattern[str]]] = {
    "the TOML reader": ("config.py", re.compile(r"^\s*(import tomllib|from tomllib import)", re.MULTILINE)),
    "the NHS number verification code table": (
        "fhir/ukcore.py",
        re.compile(r"trace-attempted-no-match-or-multiple-match-found"),
    ),
    "a trust's adapter settings": (
        "",  # nowhere in the engine's code: adapters/<trust>/adapter.toml holds them
        re.compile(r"\b(schedule_seconds|page_size|concurrency)\s*=\s*\d"),
    ),
}


#: the conformance kit tests any server as a black box and imports nothing of the engine (not even its config),
#: so it keeps its own reader for its packs' catalogues
STANDALONE = ("conformance/",)


def homes(src: Path, pattern: re.Pattern[str]) -> list[str]:
    """Every module of the engine (the standalone kit aside) whose text matches ``pattern``."""
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.relative_to(src).as_posix().startswith(STANDALONE):
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            found.append(path.relative_to(src).as_posix())
    return found


@pytest.mark.parametrize("fact", FACTS)
def test_each_fact_has_one_home(fact: str) -> None:
    home, pattern = FACTS[fact]
    assert homes(ENGINE_SRC, pattern) == ([home] if home else [])


@pytest.mark.parametrize(
    ("fact", "copy"),
    [
        ("the TOML reader", "import tomllib\n"),
        ("the NHS number verification code table", 'T = {"trace-attempted-no-match-or-multiple-match-found": "04"}\n'),
        ("a trust's adapter settings", "DEMO = dict(schedule_seconds=60)\nX = AdapterConfig(schedule_seconds = 60)\n"),
    ],
)
def test_a_second_copy_is_caught(tmp_path: Path, fact: str, copy: str) -> None:
    src = tmp_path / "bcconnect"
    shutil.copytree(ENGINE_SRC, src, ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.sql", "*.toml"))
    (src / "cli" / "second_copy.py").write_text(copy, encoding="utf-8")
    assert "cli/second_copy.py" in homes(src, FACTS[fact][1])
