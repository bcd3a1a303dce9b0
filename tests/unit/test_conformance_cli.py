"""`bcconnect conformance`: misuse is one sentence and exit 2; `list` names every pack and check."""

from __future__ import annotations

import pytest

from bcconnect.cli.main import main
from bcconnect.conformance import PACKS


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["conformance", "run", "--pack", "server", "--target", "example.org"], "must be an http(s) URL"),
        (["conformance", "run", "--pack", "source-hl7", "--target", "http://x"], "mllp://HOST:PORT"),
        (["conformance", "run", "--pack", "nope", "--target", "http://x"], "invalid choice"),
        (["conformance", "run", "--pack", "server"], "--target"),
        (
            ["conformance", "run", "--pack", "server", "--target", "http://x", "--check", "srv.nope"],
            "no check srv.nope",
        ),
    ],
)
def test_misuse_is_one_sentence_and_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals exit from inside the parser
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_list_names_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "list"]) == 0
    out = capsys.readouterr().out
    for pack in PACKS.values():
        assert f"{pack.name}: " in out
        for check in pack.checks:
            assert check.id in out


def test_an_unreachable_target_is_a_failed_run_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on the port: every check reports no verdict, the exit code is 1."""
    code = main(
        ["conformance", "run", "--pack", "server", "--target", "http://127.0.0.1:9/fhir", "--check", "srv.read"]
    )
    assert code == 1
    assert "without verdict" in capsys.readouterr().out


def test_run_flags_become_the_packs_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """--probe-types and the fixture people reach the run as options (the checks read them by name)."""
    from bcconnect.cli import conformance_cmd
    from bcconnect.conformance import Report

    seen: dict[str, object] = {}

    async def fake_run(pack: str, target: str, options: dict[str, str], *, only: list[str]) -> Report:
        seen.update(pack=pack, target=target, options=options, only=only)
        return Report(pack, target, "2026-01-01T00:00:00+00:00", 0.0, [])

    monkeypatch.setattr(conformance_cmd, "run_pack", fake_run)
    argv = ["conformance", "run", "--pack", "server", "--target", "http://127.0.0.1:9/fhir", "--probe-types"]
    assert main([*argv, "Patient,Observation", "--objector", "9000000009"]) == 0
    assert seen["options"] == {"probe_types": "Patient,Observation", "objector": "9000000009"}
