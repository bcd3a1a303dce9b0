"""The layering of the design brief, checked by walking every import in the engine.

A module may import only packages of a strictly lower layer (and its own package). The sandbox and the
conformance runner are the outside world: they may use only the shared FHIR constants and NHS number rules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "bcconnect"

#: higher imports lower, never the reverse; equal ranks may not import each other
RANK: dict[str, int] = {
    "cli": 100,
    "api": 90,
    "ops": 85,
    "triage": 90,
    "view": 80,
    "ingest": 80,
    "identity": 70,
    "security": 70,
    "store": 60,
    "search": 50,
    "adapters": 40,
    "mapping": 40,
    "fhir": 30,
    "hl7v2": 30,
    "config": 10,
    "logging": 10,
    "metrics": 10,
    "errors": 5,
}
#: packages that may import only these modules of the engine
OUTSIDE_WORLD = {"sandbox", "conformance"}
OUTSIDE_WORLD_MAY_IMPORT = {"bcconnect.fhir.constants", "bcconnect.fhir.nhs_number", "bcconnect"}


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bcconnect" else None


def _engine_imports(path: Path, src: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(("bcconnect", *path.relative_to(src).with_suffix("").parts))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("bcconnect")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.split(".")[: -node.level] if path.name != "__init__.py" else package.split(".")
                if path.name == "__init__.py" and node.level > 1:
                    base = package.split(".")[: -(node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.startswith("bcconnect"):
                found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
                found.append((node.lineno, module))
    return found


def _violations(src: Path = SRC) -> list[str]:
    problems: list[str] = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        own = rel.parts[0].removesuffix(".py")
        if own in ("__init__", "__main__"):
            continue
        for line, module in _engine_imports(path, src):
            target = _top(module)
            if target is None or target == own:
                continue
            where = f"{rel}:{line} imports {module}"
            if own in OUTSIDE_WORLD:
                if not any(module == m or module.startswith(m + ".") for m in OUTSIDE_WORLD_MAY_IMPORT):
                    problems.append(f"{where}: the outside world may import only fhir.constants/nhs_number")
                continue
            if target in OUTSIDE_WORLD and own != "cli":
                problems.append(f"{where}: the engine never imports the {target} package")
                continue
            if target == "cli":
                problems.append(f"{where}: nothing imports cli")
                continue
            if own not in RANK:
                problems.append(f"{rel}: package {own!r} has no layer; add it to RANK with a reason")
                continue
            if target not in RANK:
                continue  # an unknown target is reported when its own files are walked
            if RANK[target] >= RANK[own]:
                problems.append(f"{where}: {own} (layer {RANK[own]}) may not import {target} ({RANK[target]})")
    return sorted(set(problems))


def test_no_module_imports_against_the_layering() -> None:
    """Every import in src/bcconnect points down the layers of the design brief."""
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from bcconnect.api import app\n", "may not import api"),
        ("import bcconnect.cli.main\n", "nothing imports cli"),
    ],
)
def test_the_walker_catches_an_upward_import(tmp_path: Path, source: str, expected: str) -> None:
    """The checker itself reports a store module that reaches upward (so the real test can fail)."""
    fake_src = tmp_path / "bcconnect"
    (fake_src / "store").mkdir(parents=True)
    (fake_src / "store" / "bad.py").write_text(source, encoding="utf-8")
    problems = _violations(fake_src)
    assert any(expected in p for p in problems), problems
