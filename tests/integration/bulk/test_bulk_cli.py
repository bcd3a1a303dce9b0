"""``bcconnect export --group ID --out DIR``: the Group export run locally, with an honest summary; misuse exit 2."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from bcconnect.cli.main import main
from bcconnect.cohorts import Cohorts
from bcconnect.config import load_settings
from bcconnect.identity import link_patients
from bcconnect.security import add_objection
from bcconnect.store import open_store, put_resources
from bcconnect.view import View
from support.security_world import OBJECTOR_NHS

from .test_bulk_export import OPTED_OUT_NHS, extended_world

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, store_url: str) -> Path:
    opt_out = tmp_path / "opt-out.txt"
    opt_out.write_text(f"{OPTED_OUT_NHS}\n", encoding="utf-8")
    config = tmp_path / "bcconnect.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n[security]\nnational_opt_out_file = "{opt_out}"\n'
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    return config


async def _seed(config: Path) -> None:
    settings = load_settings(config)
    async with open_store(settings.store_url()) as store:
        await store.write(lambda tx: put_resources(tx, extended_world()))
        await store.write(lambda tx: add_objection(tx, OBJECTOR_NHS))
        patients = [orjson.loads(w.body) for w in extended_world() if w.resource_type == "Patient"]
        await store.write(lambda tx: link_patients(tx, patients, ods_code="RL4"))
        await Cohorts.from_settings(settings, View(store)).compute(["ltc-3plus"])


def test_export_group_writes_the_cohort_and_says_what_it_left_out(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, store_url)
    anyio.run(_seed, config)
    every = tmp_path / "every-type"
    assert main(["--config", str(config), "export", "--group", "ltc-3plus", "--out", str(every)]) == 0
    printed = capsys.readouterr().out
    # Consent is in the store but not served: not exported, and no error file about it
    assert "Consent" not in printed
    assert "error file" not in printed
    assert not list(every.glob("OperationOutcome*"))
    out = tmp_path / "out"
    code = main(
        ["--config", str(config), "export", "--group", "ltc-3plus", "--out", str(out), "--type", "Patient,Condition"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Patient: 1" in printed
    assert "Condition: 3" in printed
    assert "exported 4 resources of Group ltc-3plus" in printed
    assert sorted(p.name for p in out.iterdir()) == ["Condition-1.ndjson", "Patient-1.ndjson"]
    lines = (out / "Condition-1.ndjson").read_bytes().splitlines()
    assert {orjson.loads(line)["id"] for line in lines} == {"c1", "c1-diabetes", "c1-asthma"}
    subset = tmp_path / "subset"
    code = main(
        ["--config", str(config), "export", "--group", "ltc-3plus", "--out", str(subset), "--type", "Condition",
         "--elements", "Condition.code"]
    )  # fmt: skip
    assert code == 0
    conditions = [orjson.loads(line) for line in (subset / "Condition-1.ndjson").read_bytes().splitlines()]
    assert all(set(c) == {"resourceType", "id", "meta", "code", "subject"} for c in conditions)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--group", "no-such-cohort"], "--group no-such-cohort: Group/no-such-cohort is not known"),
        (["--group", "ltc-3plus", "--type", "Nonsense"], "--type: 'Nonsense' is not a resource type served here"),
        (["--group", "ltc-3plus", "--since", "last week"], "--since: 'last week' is not a FHIR instant"),
        (["--group", "ltc-3plus", "--raw"], "--raw and --with-store-meta do not apply"),
        (["--type", "Patient"], "--type, --since and --elements select within a --group export"),
        (
            ["--group", "ltc-3plus", "--elements", "Condition.nonsense"],
            "--elements: 'Condition.nonsense': Condition has",
        ),
    ],
)
def test_export_group_misuse_is_one_sentence_and_exit_2(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    config = _config(tmp_path, store_url)
    anyio.run(_seed, config)
    code = main(["--config", str(config), "export", "--out", str(tmp_path / "out"), *arguments])
    assert code == 2
    error = capsys.readouterr().err
    assert message in error
    assert "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
