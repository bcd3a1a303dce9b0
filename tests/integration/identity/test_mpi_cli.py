"""The ``bcconnect mpi`` commands against a real SQLite store: review, explain, merge, evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio
import pytest

from bcconnect.cli import mpi_cmd
from bcconnect.identity import link_patients, list_reviews
from bcconnect.store import open_store
from support.identity_patients import patient


def _run(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bcconnect")
    parser.add_argument("--config")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    sub = parser.add_subparsers(dest="command")
    mpi_cmd.register(sub)
    args = parser.parse_args(["--config", str(config), *argv])
    return int(args.handler(args))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration whose store holds two linked records and one open review item."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "bcconnect.toml"
    path.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")

    async def seed() -> None:
        async with open_store(url) as store:
            for ods, rec in (
                ("RL4", patient("a", ods="RL4")),
                ("RBK", patient("b", ods="RBK")),
                ("RNA", patient("c", ods="RNA", nhs=None, given="Margret", postcode="DY1 4AB", phone="07700900999")),
            ):
                await store.write(lambda tx, rec=rec, ods=ods: link_patients(tx, [rec], ods_code=ods))

    anyio.run(seed)
    return path


def _open_review(config: Path) -> str:
    url = config.read_text(encoding="utf-8").split('"')[1]

    async def read() -> str:
        async with open_store(url) as store:
            (item,) = await store.read(lambda tx: list_reviews(tx))
            return item.review_id

    return anyio.run(read)


def test_review_show_puts_records_side_by_side(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(config, "mpi", "review", "list") == 0
    assert "1 open review item(s)" in capsys.readouterr().out
    review_id = _open_review(config)
    assert _run(config, "mpi", "review", "show", review_id) == 0
    out = capsys.readouterr().out
    assert "Patient/c  vs  Patient/a" in out
    assert "postcode" in out
    assert "DY1 4AB" in out


def test_accept_then_explain(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    review_id = _open_review(config)
    assert _run(config, "mpi", "review", "accept", review_id, "--by", "steward1", "--note", "checked") == 0
    assert "MANUAL, by steward1" in capsys.readouterr().out
    assert _run(config, "mpi", "explain", "Patient/c") == 0
    out = capsys.readouterr().out
    assert "steward-accept" in out
    assert "by steward1" in out
    assert _run(config, "mpi", "review", "list") == 0
    assert "0 open review item(s)" in capsys.readouterr().out


def test_merge_unmerge_and_evaluate(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(config, "mpi", "merge", "c", "a", "--by", "steward1") == 0
    assert _run(config, "mpi", "unmerge", "c", "--by", "steward1") == 0
    truth = tmp_path / "ground_truth.csv"
    truth.write_text(
        "ods_code,source_patient_id,person_id,noise\nRL4,Ma,P1,\nRBK,Mb,P1,moved_house\nRNA,Mc,P1,typo;moved_house\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert _run(config, "mpi", "evaluate", "--truth", str(truth)) == 0
    out = capsys.readouterr().out
    assert "records matched to the truth file: 3 of 3 rows" in out
    assert "precision 1.00000  recall 0.33333" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # per category: moved_house touches all three true pairs, one of them found; typo two pairs, none found
    assert rows["moved_house"][1:4] == ["2", "3", "0.3333"]
    assert rows["typo"][1:4] == ["1", "2", "0.0000"]
    assert "splits: 2 pair(s)" in out
    assert "Patient/" in out.split("splits:")[1]
