"""The engine's CLI works without the sandbox distribution; the commands that need it say so in one sentence."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: run the CLI in a fresh interpreter where the sandbox distribution cannot be imported (as if never installed)
WITHOUT_SANDBOX = """
import sys
sys.modules["bcconnect_sandbox"] = None  # find_spec answers None, import raises: the distribution is absent
from bcconnect.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SANDBOX, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "command",
    [
        ["demo", "--persons", "10"],
        ["sandbox", "serve"],
        ["sandbox", "generate", "--out", "unused"],
    ],
)
def test_a_command_that_needs_the_sandbox_says_what_to_install(command: list[str]) -> None:
    result = _cli(*command)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs the simulated trusts, which are not installed" in lines[0]
    assert "bcconnect-sandbox" in lines[0]


def test_every_other_command_still_parses() -> None:
    result = _cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "sync", "status", "demo", "sandbox"):
        assert command in result.stdout
