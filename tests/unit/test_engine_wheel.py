"""The engine's distribution carries no simulator: its package discovery finds only ``bcconnect`` packages, and
no module of the engine holds the sandboxes' demo credentials."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def _wheel_packages() -> list[str]:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    return find_packages(where=str(ROOT / find["find"]["where"][0]), include=find["find"]["include"])


def test_the_engine_wheel_packages_are_the_engine_only() -> None:
    packages = _wheel_packages()
    assert "bcconnect" in packages
    assert all(p == "bcconnect" or p.startswith("bcconnect.") for p in packages), packages
    assert not any("sandbox" in p for p in packages), packages


def test_the_sandbox_lives_outside_the_engine_source_tree() -> None:
    assert not (ROOT / "src" / "bcconnect_sandbox").exists()
    assert (ROOT / "sandbox" / "src" / "bcconnect_sandbox" / "__init__.py").is_file()


def test_no_engine_module_holds_the_sandbox_credentials() -> None:
    """The demo's secrets are made by the sandbox at run time; none is written into the engine."""
    for path in (ROOT / "src" / "bcconnect").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml", ".json", ".yaml", ".md"):
            text = path.read_text(encoding="utf-8", errors="replace")
            assert "sandbox-secret" not in text, path
            assert "sandbox-key" not in text, path
