"""The suite needs nothing outside the repository and nothing from how it was started: no test reads above the
project folder, and every child process a test starts has a deadline. Each guard is proved on injected code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {"run", "check_output", "check_call", "call"}
STARTERS = {"Popen", "open_process", "create_subprocess_exec", "create_subprocess_shell"}
DEADLINE = re.compile(r"timeout\s*=|fail_after|move_on_after|Timer\(|\.wait\(timeout")
OUTSIDE = re.compile(r"\.\./shared|[\"']shared[\"']\s*/|/ [\"']shared[\"']")


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def problems_in(path: Path, root: Path) -> list[str]:
    """Reads above ``root`` and child processes without a deadline, in one test module."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    rel = path.relative_to(root)
    deepest = len(rel.parts) - 1  # parents[deepest] is the project folder
    found = [f"{rel}: reads outside the repository (shared reference folder)" for _ in OUTSIDE.findall(text)]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
            and node.slice.value > deepest
            and "__file__" in ast.unparse(node.value)
        ):
            found.append(f"{rel}:{node.lineno}: parents[{node.slice.value}] is above the project folder")
    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
        body = ast.unparse(function)
        for call in [n for n in ast.walk(function) if isinstance(n, ast.Call)]:
            name = _call_name(call)
            if name in RUNNERS and "subprocess" in ast.unparse(call.func):
                if not any(k.arg == "timeout" for k in call.keywords):
                    found.append(f"{rel}:{call.lineno}: subprocess.{name} without timeout=")
            elif name in STARTERS and not DEADLINE.search(body):
                found.append(f"{rel}:{call.lineno}: {name} in {function.name} with no deadline")
    return found


def test_the_suite_reads_only_the_repository_and_bounds_every_child_process() -> None:
    this = Path(__file__).resolve()
    files = [p for p in sorted((ROOT / "tests").rglob("*.py")) if p.resolve() != this]
    assert [problem for path in files for problem in problems_in(path, ROOT)] == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            'from pathlib import Path\nD = Path(__file__).resolve().parents[3] / "shared"\n',
            "above the project folder",
        ),
        ('P = "../shared/fhir-r4/search-parameters.json"\n', "outside the repository"),
        ("import subprocess\ndef test_x():\n    subprocess.run(['true'])\n", "without timeout="),
        (
            "import subprocess\ndef test_x():\n    child = subprocess.Popen(['sleep', '9'])\n    child.wait()\n",
            "with no deadline",
        ),
    ],
)
def test_each_kind_of_problem_is_caught(tmp_path: Path, source: str, expected: str) -> None:
    module = tmp_path / "tests" / "unit" / "test_injected.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    found = problems_in(module, tmp_path)
    assert any(expected in f for f in found), found
