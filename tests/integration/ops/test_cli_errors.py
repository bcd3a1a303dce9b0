"""Every expected failure of the command line is one sentence on stderr and exit 2 — never a traceback.

Each case runs the real ``bcconnect`` in a subprocess against a small deployment in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A configuration with one adapter (its trust is never called by these commands) and an empty store."""
    folder = tmp_path / "adapters" / "rl4"
    folder.mkdir(parents=True)
    shutil.copy(PROJECT / "adapters" / "rl4" / "adapter.toml", folder / "adapter.toml")
    path = tmp_path / "bcconnect.toml"
    path.write_text('[store]\nurl = "sqlite:///store.db"\n[paths]\nadapters_dir = "adapters"\n', encoding="utf-8")
    return path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``bcconnect *args``, its output captured (stdout may be given: a closed pipe)."""
    return subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_sentence(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, exactly one line on stderr starting ``bcconnect: error:``, naming each fragment; no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bcconnect: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_demo_on_a_busy_port_fails_before_it_syncs(tmp_path: Path) -> None:
    """The port is taken first: the demo says so in one sentence and never starts the sandboxes or a sync."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli(
            "demo", "--port", str(port), "--persons", "10", "--data-dir", str(tmp_path / "d"), cwd=tmp_path
        )
    assert_one_sentence(result, f"127.0.0.1:{port}")
    assert result.stdout == ""  # nothing generated, nothing synced
    assert not (tmp_path / "d" / "bcconnect.db").exists()


def test_serve_on_a_busy_port(deployment: Path) -> None:
    """``serve`` on a taken port: one sentence, exit 2."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("--config", str(deployment), "serve", "--no-auth", "--port", str(port), cwd=deployment.parent)
    assert_one_sentence(result, f"127.0.0.1:{port}")


def test_a_missing_payload_file(deployment: Path) -> None:
    """``quarantine replay --payload-file <missing>`` names the option and the file."""
    result = run_cli(
        "--config", str(deployment), "quarantine", "replay", "1", "--payload-file", "nope.json", cwd=deployment.parent
    )
    assert_one_sentence(result, "--payload-file", "nope.json", "no such file")


def test_status_json_into_a_closed_pipe(deployment: Path) -> None:
    """``status --json | head`` whose reader has gone: one sentence about the closed output, exit 2."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before we write a byte
    try:
        result = run_cli("--config", str(deployment), "status", "--json", cwd=deployment.parent, stdout=write_end)
    finally:
        os.close(write_end)
    assert_one_sentence(result, "broken pipe")


def test_export_onto_an_existing_file(deployment: Path) -> None:
    """``export --out <existing file>``: refused before anything is written; the file is untouched."""
    target = deployment.parent / "existing.txt"
    target.write_text("keep me", encoding="utf-8")
    result = run_cli("--config", str(deployment), "export", "--out", str(target), cwd=deployment.parent)
    assert_one_sentence(result, str(target), "existing file")
    assert target.read_text(encoding="utf-8") == "keep me"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BCCONNECT_API_PORT", "http"), ("BCCONNECT_API_PORT", "70000"), ("BCCONNECT_STORE_URL", "mysql://db")],
)
def test_a_bad_environment_variable_is_named_as_such(deployment: Path, variable: str, value: str) -> None:
    """The variable is blamed, not the configuration file (which is fine)."""
    result = run_cli("--config", str(deployment), "status", cwd=deployment.parent, env={variable: value})
    assert_one_sentence(result, f"environment variable {variable}")
    assert str(deployment) not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("quarantine", "list", "--adapter", "nosuch"),
        ("sync", "--adapter", "nosuch"),
        ("remap", "--adapter", "nosuch"),
    ],
    ids=["quarantine-list", "sync", "remap"],
)
def test_an_unknown_adapter_name_is_an_error_everywhere(deployment: Path, command: tuple[str, ...]) -> None:
    """An adapter name nobody configured is an error that lists the configured ones — never an empty answer."""
    result = run_cli("--config", str(deployment), *command, cwd=deployment.parent)
    assert_one_sentence(result, "'nosuch'", "configured: rl4")


def test_the_guard_passes_a_known_adapter(deployment: Path) -> None:
    """The same command with a configured name succeeds (the check is not refusing everything)."""
    result = run_cli("--config", str(deployment), "quarantine", "list", "--adapter", "rl4", cwd=deployment.parent)
    assert result.returncode == 0, result.stderr
