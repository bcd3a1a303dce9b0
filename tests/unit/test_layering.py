"""The import contract of docs/ARCHITECTURE.md holds for the engine and the sandbox, and the guard can fail.

Each self-test copies the real tree, injects one violation and expects exactly that violation (and nothing else)
to be reported, so a checker that silently lets an edge through fails here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.import_contract import ENGINE_SRC, SANDBOX_SRC, Contract, marked_table, violations


def test_the_code_keeps_the_import_contract() -> None:
    """Every import in src/bcconnect and the sandbox is allowed by the contract (or a named, needed exception)."""
    assert violations() == []


def test_the_contract_names_every_engine_package() -> None:
    """Each package folder and top-level module of the engine has a row (or is a base package)."""
    contract = Contract.from_architecture()
    packages = {p.name for p in ENGINE_SRC.iterdir() if (p / "__init__.py").is_file()}
    packages |= {p.stem for p in ENGINE_SRC.glob("*.py") if not p.stem.startswith("_")}
    assert packages - set(contract.allowed) - {"fhir", "errors", "config", "logging", "metrics"} == set()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the engine and the sandbox to inject violations into."""
    engine = tmp_path / "src" / "bcconnect"
    sandbox = tmp_path / "sandbox" / "bcconnect_sandbox"
    ignore = shutil.ignore_patterns("__pycache__", "*.json", "*.sql", "*.toml", "*.md")
    shutil.copytree(ENGINE_SRC, engine, ignore=ignore)
    shutil.copytree(SANDBOX_SRC, sandbox, ignore=ignore)
    return engine, sandbox


INJECTIONS = [
    pytest.param(
        "sandbox/bcconnect_sandbox/leak.py",
        "from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM\n",
        "sandbox is the outside world and may not import the engine",
        id="sandbox-imports-engine",
    ),
    pytest.param(
        "src/bcconnect/conformance/leak.py",
        "from bcconnect.store import open_store\n",
        "conformance is the outside world and may not import the engine",
        id="conformance-imports-engine",
    ),
    pytest.param(
        "src/bcconnect/api/leak.py",
        "from bcconnect.ingest import sync_adapters\n",
        "api may not import ingest",
        id="api-imports-ingest",
    ),
    pytest.param(
        "src/bcconnect/api/leak.py",
        "from bcconnect.store import open_store\n",
        "api may not import store",
        id="api-imports-store",
    ),
    pytest.param(
        "src/bcconnect/api/leak.py",
        "from bcconnect.search import registry\n",
        "api may not import search",
        id="api-imports-search",
    ),
    pytest.param(
        "src/bcconnect/app/leak.py",
        "from bcconnect.security import SecurityGate\n",
        "app may not import security",
        id="app-imports-security",
    ),
    pytest.param(
        "src/bcconnect/access/leak.py",
        "from bcconnect.store import Tx\n",
        "access may not import store",
        id="access-imports-store",
    ),
    pytest.param(
        "src/bcconnect/view/leak.py",
        "import bcconnect.mapping\n",
        "view may not import mapping",
        id="view-imports-mapping",
    ),
    pytest.param(
        "src/bcconnect/cli/leak.py",
        "from bcconnect.ingest._runs import watermark_of\n",
        "cli reaches into the private module bcconnect.ingest._runs",
        id="private-module-reach",
    ),
    pytest.param(
        "src/bcconnect/cli/leak.py",
        "from bcconnect.store import _landing\n",
        "cli imports the private name _landing",
        id="private-name",
    ),
    pytest.param(
        "src/bcconnect/cli/leak.py",
        "from bcconnect.store import land_raw_not_exported\n",
        "land_raw_not_exported is not in bcconnect.store.__all__",
        id="name-outside-all",
    ),
    pytest.param(
        "src/bcconnect/view/__init__.py",
        "from .. import mapping\n",
        "view may not import mapping (bcconnect.mapping)",
        id="parent-relative-import-in-init",
    ),
    pytest.param(
        "src/bcconnect/view/leak.py",
        "from ._view import View\n",
        "relative import of bcconnect.view._view",
        id="relative-import",
    ),
    pytest.param(
        "src/bcconnect/store/leak.py",
        "from bcconnect.cli.main import main\n",
        "nothing imports cli",
        id="imports-cli",
    ),
    pytest.param(
        "src/bcconnect/store/leak.py",
        "import bcconnect_sandbox\n",
        "only cli may import the sandbox",
        id="engine-imports-sandbox",
    ),
    pytest.param(
        "src/bcconnect/newroom/__init__.py",
        "",
        "package 'newroom' has no row in the import contract",
        id="package-without-row",
    ),
    pytest.param(
        "src/bcconnect/fhir/leak.py",
        "from bcconnect.store import Tx\n",
        "the base package fhir may not import store",
        id="base-imports-upward",
    ),
]


@pytest.mark.parametrize(("file", "source", "expected"), INJECTIONS)
def test_each_kind_of_violation_is_caught(tree: tuple[Path, Path], file: str, source: str, expected: str) -> None:
    """One injected violation is reported at the injected file, naming the rule it broke (and nothing else is)."""
    engine, sandbox = tree  # an exact copy of the code the first test finds clean
    target = engine.parents[1] / file
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(source)
    found = violations(engine, sandbox)
    injected = str(target.relative_to(target.parents[len(Path(file).parts) - 2]))
    assert found, "the injected violation went unnoticed"
    assert all(f.startswith(injected) for f in found), found
    assert any(expected in f for f in found), found


def test_an_exception_no_longer_needed_fails(tree: tuple[Path, Path]) -> None:
    """A known exception whose edge is gone is reported, so the exception list only shrinks."""
    engine, sandbox = tree
    contract = Contract.from_architecture()
    stale = Contract(contract.allowed, {**contract.exceptions, ("identity", "view"): "an issue long closed"})
    assert violations(engine, sandbox, stale) == [
        "exception identity → view (an issue long closed) is no longer needed: remove it from the contract"
    ]


def test_an_exception_covers_only_its_edge(tree: tuple[Path, Path]) -> None:
    """Without the documented exceptions the api's current edges are reported: the exceptions are load-bearing."""
    engine, sandbox = tree
    contract = Contract.from_architecture()
    bare = Contract(contract.allowed, {})
    found = violations(engine, sandbox, bare)
    for importer, imported in contract.exceptions:
        assert any(f"{importer} may not import {imported}" in f for f in found), (importer, imported, found)


def test_the_tables_are_read_from_the_document() -> None:
    """The parser reads body rows only, cell by cell."""
    text = "<!-- t -->\n| a | b |\n| --- | --- |\n| x | y, z |\n| w | |\n<!-- /t -->\n"
    assert marked_table(text, "t") == [["x", "y, z"], ["w", ""]]
