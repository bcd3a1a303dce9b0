"""``bcconnect cohort list|show|compute|members`` as a user runs them (a subprocess, a real config file)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from .conftest import CohortWorld
from .test_against_truth import expected

pytestmark = pytest.mark.anyio

BIN = Path(sys.executable).with_name("bcconnect")


async def _cli(world: CohortWorld, *args: str, extra: str = "") -> tuple[int, str, str]:
    config = world.data_dir / "cohort-cli.toml"
    config.write_text(f'[store]\nurl = "{world.store_url}"\n{extra}', encoding="utf-8")
    done = await anyio.run_process([str(BIN), "--config", str(config), "--log-level", "error", *args], check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_compute_list_show_and_members_in_three_formats(cohort_world: CohortWorld) -> None:
    """Compute at the world's time, then the members (JSON, CSV, table) are the truth's; show sums to them."""
    as_of = cohort_world.now.isoformat()
    code, out, err = await _cli(cohort_world, "cohort", "compute", "--as-of", as_of, "--format", "json")
    assert code == 0, err
    computed = {r["id"]: r for r in orjson.loads(out)}
    # the facts read model emptied and read again from the whole view gives the same cohorts
    code, out, err = await _cli(
        cohort_world, "cohort", "compute", "--as-of", as_of, "--rebuild-facts", "--format", "json"
    )
    assert code == 0, err
    assert {r["id"]: r["members"] for r in orjson.loads(out)} == {k: r["members"] for k, r in computed.items()}
    assert set(computed) == {"ltc-3plus", "emergency-3plus", "ae-repeat"}
    code, out, err = await _cli(cohort_world, "cohort", "members", "ltc-3plus", "--format", "json")
    assert code == 0, err
    members = orjson.loads(out)
    assert {m["nhs_number"] for m in members} == expected(cohort_world, "ltc-3plus")
    assert computed["ltc-3plus"]["members"] == len(members)
    code, out, _ = await _cli(cohort_world, "cohort", "members", "ltc-3plus", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(out)))) == len(members)
    code, out, _ = await _cli(cohort_world, "cohort", "list")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["id", "title", "members"]
    assert out.rstrip().endswith("(3 rows)")
    code, out, _ = await _cli(cohort_world, "cohort", "show", "ltc-3plus", "--format", "json")
    rows = orjson.loads(out)
    by_borough = sum(r["members"] for r in rows if r["kind"] == "borough")
    by_practice = sum(r["members"] for r in rows if r["kind"] == "practice")
    assert by_borough == by_practice == len(members)


async def test_misuse_is_one_sentence_and_exit_2(cohort_world: CohortWorld, tmp_path: Path) -> None:
    """An unknown cohort, a bad date, a broken definitions file: exit 2, one line, no traceback."""
    code, _, err = await _cli(cohort_world, "cohort", "members", "nope")
    assert code == 2
    assert "no cohort named 'nope'" in err
    assert "Traceback" not in err
    code, _, err = await _cli(cohort_world, "cohort", "compute", "--as-of", "yesterday")
    assert code == 2
    assert "Traceback" not in err
    broken = tmp_path / "cohorts.toml"
    broken.write_text('[cohort.x]\ntitle = "X"\nrule = { colour = "blue" }\n', encoding="utf-8")
    code, _, err = await _cli(cohort_world, "cohort", "list", extra=f'[cohorts]\ndefinitions = "{broken}"\n')
    assert code == 2
    assert "unknown rule 'colour'" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = await _cli(cohort_world, "cohort")
    assert code == 2
