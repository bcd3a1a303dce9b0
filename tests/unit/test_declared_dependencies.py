"""Every third-party module the engine and the sandbox import is declared by their distribution (pyproject.toml),
so a fresh install has it; an undeclared import found by accident in a developer's environment fails here."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN = {"bcconnect", "bcconnect_sandbox"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: Path) -> set[str]:
    """Distribution names a pyproject declares (runtime and optional), normalised."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = [
        *project.get("dependencies", []),
        *(d for ds in project.get("optional-dependencies", {}).values() for d in ds),
    ]
    return {_normal(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in specs}


def imported(src: Path) -> dict[str, str]:
    """Top-level third-party modules imported under ``src`` → one file that imports it."""
    found: dict[str, str] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN and top != "__future__":
                    found.setdefault(top, str(path.relative_to(src.parent)))
    return found


def undeclared(src: Path, pyproject: Path) -> list[str]:
    """Imports whose distribution the pyproject does not declare."""
    owners = packages_distributions()
    wanted = declared(pyproject)
    problems = []
    for module, where in sorted(imported(src).items()):
        distributions = {_normal(d) for d in owners.get(module, [module])}
        if not distributions & wanted:
            problems.append(f"{where} imports {module} (distribution {', '.join(sorted(distributions))}): undeclared")
    return problems


@pytest.mark.parametrize(
    ("src", "pyproject"),
    [("src/bcconnect", "pyproject.toml"), ("sandbox/src/bcconnect_sandbox", "sandbox/pyproject.toml")],
)
def test_every_import_is_declared(src: str, pyproject: str) -> None:
    assert undeclared(ROOT / src, ROOT / pyproject) == []


def test_an_undeclared_import_is_caught(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import orjson\nfrom fhir_core.types import FhirBase\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["orjson>=3"]\n', encoding="utf-8")
    problems = undeclared(tmp_path / "pkg", tmp_path / "pyproject.toml")
    assert len(problems) == 1
    assert "imports fhir_core" in problems[0]


def test_the_suite_runs_the_doctests_of_the_engine_and_the_sandbox() -> None:
    """``make test`` (plain pytest) collects the examples in the docstrings of src/ and sandbox/src/."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in options["addopts"]
    assert {"tests", "src", "sandbox/src"} <= set(options["testpaths"])
