"""Headless Chromium for the page tests: the OS package's binary (``scripts/ensure-chromium`` prints its path into
``BCCONNECT_CHROMIUM``), driven by playwright, never a downloaded browser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import pytest

#: where page tests keep screenshots for a person to look at (git-ignored)
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"

#: headless, and nothing that reaches for the network or a GPU
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_executable() -> str:
    """The browser's path, or skip the test with the reason (``scripts/test`` always sets it)."""
    executable = os.environ.get("BCCONNECT_CHROMIUM")
    if not executable:
        pytest.skip("BCCONNECT_CHROMIUM is not set (scripts/ensure-chromium prints it)")
    return executable
