"""``bcconnect mpi relink``: every stored record decided again under the current rules, with honest counts and a
progress bar only on a terminal."""

from __future__ import annotations

import argparse
import dataclasses
import io
import re
import sys
from pathlib import Path

import anyio
import pytest

from bcconnect.cli import mpi_cmd
from bcconnect.identity import link_patients, load_rules, persons_of
from bcconnect.store import open_store
from support.identity_patients import patient

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bcconnect")
    parser.add_argument("--config")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    sub = parser.add_subparsers(dest="command")
    mpi_cmd.register(sub)
    args = parser.parse_args(["--config", str(config), *argv])
    return int(args.handler(args))


def _url(config: Path) -> str:
    return config.read_text(encoding="utf-8").split('"')[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Three trusts' records of one person (no NHS number), linked under rules so strict that nothing scored
    links: three persons. The packaged rules link them."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "bcconnect.toml"
    path.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    strict = dataclasses.replace(load_rules(), match_at=500.0, review_at=500.0)

    async def seed() -> None:
        async with open_store(url) as store:
            for pid, ods in (("a", "RL4"), ("b", "RBK"), ("c", "RNA")):
                rec = patient(pid, ods=ods, nhs=None)
                await store.write(lambda tx, rec=rec, ods=ods: link_patients(tx, [rec], ods_code=ods, rules=strict))

    anyio.run(seed)
    return path


def _persons(config: Path) -> set[str]:
    async def read() -> set[str]:
        async with open_store(_url(config)) as store:
            found = await store.read(lambda tx: persons_of(tx, ["a", "b", "c"]))
            return set(found.values())

    return anyio.run(read)


def test_relink_applies_the_current_rules_and_counts_what_moved(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(_persons(config)) == 3
    assert _run(config, "mpi", "relink", "--page", "2") == 0
    captured = capsys.readouterr()
    assert len(_persons(config)) == 1
    # a (first page) matches b and c: it goes to one of them and the other person is joined; the person then
    # takes its stable id (from a), so a keeps its person, b is re-decided to it, and c's person was joined
    assert "relinked 3 record(s) under rules " in captured.out
    assert "1 re-decided to another person, 2 kept their person; 1 person(s) joined into another" in captured.out
    assert "persons 3 -> 1; open review items 0 -> 0" in captured.out
    assert captured.err == ""  # not a terminal: no progress bar, only the result lines
    # a second run finds nothing to change
    assert _run(config, "mpi", "relink") == 0
    again = capsys.readouterr().out
    assert "0 re-decided to another person, 3 kept their person; 0 person(s) joined into another" in again
    assert "persons 1 -> 1" in again


def test_relink_draws_progress_on_a_terminal(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    assert _run(config, "mpi", "relink", "--page", "1") == 0
    drawn = _ANSI.sub("", screen.getvalue())
    assert "relinking records" in drawn
    assert "3/3" in drawn
    assert "records/s" in drawn
    assert "relinked 3 record(s)" in capsys.readouterr().out


@pytest.mark.parametrize("page", ["0", "lots", "20000"])
def test_relink_page_size_misuse_is_one_sentence_and_exit_2(
    config: Path, page: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(config, "mpi", "relink", "--page", page)
    assert exit_info.value.code == 2
    assert "expected a whole number of records from 1 to 10000" in capsys.readouterr().err
