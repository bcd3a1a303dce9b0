"""Benchmarks are leaves: no test, engine or sandbox module imports ``bench/`` or puts it on the import path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_MODULES = frozenset(p.stem for p in (ROOT / "bench").glob("*.py")) | {"bench"}


def bench_reaches(path: Path) -> list[str]:
    """Imports of a bench module, and text that puts ``bench`` on ``sys.path``, in one file."""
    text = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in BENCH_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in BENCH_MODULES:
                found.append(f"from {node.module} import …")
        elif isinstance(node, ast.Constant) and node.value == "bench" and "sys.path" in text:
            found.append("'bench' on sys.path")
    return found


def _python_files() -> list[Path]:
    this = Path(__file__).resolve()  # its own injected examples are data, not imports
    files = [p for folder in ("tests", "src", "sandbox/src") for p in sorted((ROOT / folder).rglob("*.py"))]
    return [p for p in files if p.resolve() != this]


def test_no_module_reaches_into_bench() -> None:
    offenders = {str(p.relative_to(ROOT)): bench_reaches(p) for p in _python_files() if bench_reaches(p)}
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        "from identity_link import main\n",
        "import bench.api_http\n",
        'import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path(__file__).parents[3] / "bench"))\n',
    ],
)
def test_each_way_of_reaching_bench_is_caught(tmp_path: Path, source: str) -> None:
    module = tmp_path / "conftest.py"
    module.write_text(source, encoding="utf-8")
    assert bench_reaches(module)
