"""Cohort membership equals the sandbox's cohort truth on a four-trust sync (all four wire dialects).

The expected members are worked out here from ``cohort_truth.csv`` with this file's own reading of the rules
(the condition groups of the sandbox's SNOMED codes, stays deduplicated by the sandbox, the window on instants),
so the engine's reading of Conditions and Encounters across trusts is what is checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bcconnect.cohorts import Cohorts, Evaluator, Rule, cohort_group, cohort_member_person_ids, months_before
from bcconnect.security import add_objection, remove_objection
from bcconnect.store import Tx

from .conftest import CohortWorld

pytestmark = pytest.mark.anyio

#: the sandbox's condition codes and the listed long-term condition each belongs to (written out here on purpose)
GROUP_OF = {
    "38341003": "hypertension", "44054006": "diabetes", "195967001": "asthma", "35489007": "depression",
    "13645005": "copd", "433144002": "ckd", "84114007": "heart_failure", "49436004": "af",
    "414545008": "chd", "52448006": "dementia", "254837009": "cancer", "363406005": "cancer",
    "399068003": "cancer", "363358000": "cancer", "230690007": "stroke_tia", "266257000": "stroke_tia",
    "58214004": "smi", "13746004": "smi",
}  # fmt: skip


def _instants(cell: str) -> list[datetime]:
    return [datetime.fromisoformat(item.split("/")[0].replace("Z", "+00:00")) for item in cell.split(";") if item]


def _in_year(starts: Iterable[datetime], now: datetime) -> int:
    edge = now.replace(year=now.year - 1)
    return sum(1 for s in starts if edge < s <= now)


def expected(world: CohortWorld, cohort: str, *, now: datetime | None = None) -> set[str]:
    """NHS numbers the truth puts in ``cohort`` (objectors left out)."""
    now = now or world.now
    out = set()
    for nhs, row in world.truth.items():
        if row["objects"] == "1":
            continue
        groups = {GROUP_OF[c] for c in row["condition_codes"].split(";") if c in GROUP_OF}
        if cohort == "ltc-3plus" and len(groups) >= 3:
            out.add(nhs)
        if cohort == "emergency-3plus" and _in_year(_instants(row["emergency_admissions"]), now) >= 3:
            out.add(nhs)
        if cohort == "ae-repeat" and _in_year(_instants(row["ae_attendances"]), now) >= 5:
            out.add(nhs)
    return out


async def _nhs_of_members(world: CohortWorld, cohort: str) -> set[str]:
    ids = await cohort_member_person_ids(world.view, cohort)
    assert ids is not None
    collector = await Cohorts(world.view).collect()
    return {collector.persons[i].nhs_number or "" for i in ids}


async def test_the_three_default_cohorts_equal_the_truth(cohort_world: CohortWorld) -> None:
    """3+ long-term conditions, 3+ emergency admissions in 12 months, 5+ A&E attendances: person for person."""
    runs = await Cohorts(cohort_world.view).compute(as_of=cohort_world.now)
    assert {r.group_id for r in runs} == {"ltc-3plus", "emergency-3plus", "ae-repeat"}
    for cohort in ("ltc-3plus", "emergency-3plus", "ae-repeat"):
        want = expected(cohort_world, cohort)
        assert want, f"the world has nobody in {cohort}: the comparison would prove nothing"
        assert await _nhs_of_members(cohort_world, cohort) == want, cohort


@pytest.mark.postgres
async def test_the_default_cohorts_equal_the_truth_on_postgresql(cohort_world_pg: CohortWorld) -> None:
    """The same world on PostgreSQL: the same members, person for person."""
    await Cohorts(cohort_world_pg.view).compute(as_of=cohort_world_pg.now)
    for cohort in ("ltc-3plus", "emergency-3plus", "ae-repeat"):
        assert await _nhs_of_members(cohort_world_pg, cohort) == expected(cohort_world_pg, cohort), cohort


async def test_a_stay_sent_by_two_trusts_counts_once(cohort_world: CohortWorld) -> None:
    """Persons whose stays arrived from two trusts: the engine counts the distinct stays the truth lists."""
    collector = await Cohorts(cohort_world.view).collect()
    by_nhs = {f.nhs_number: f for f in collector.persons.values()}
    doubled = [
        row for row in cohort_world.truth.values()
        if row["objects"] == "0" and any("+" in s.split("/")[2] for s in row["emergency_admissions"].split(";") if s)
    ]  # fmt: skip
    assert len(doubled) >= 3, "the world sends too few stays twice to test the deduplication"
    evaluator = Evaluator(cohort_world.now + timedelta(days=3650))
    for row in doubled:
        facts = by_nhs[row["nhs_number"]]
        stays = len([s for s in row["emergency_admissions"].split(";") if s])
        assert len(facts.stays) > stays, "the engine should see more stay records than distinct stays"
        forever = Rule("emergency_admissions", minimum=stays, maximum=stays, months=12 * 20)
        assert evaluator.matches(forever, facts), row["person_id"]


async def test_the_twelve_month_window_edges_on_both_sides(cohort_world: CohortWorld) -> None:
    """A stay starting exactly 12 months before the computation is out; one second later it is in; a stay
    after the computation time is out. Checked on real synced stays against the truth at each edge."""
    collector = await Cohorts(cohort_world.view).collect()
    by_nhs = {f.nhs_number: f for f in collector.persons.values()}
    one = Rule("emergency_admissions", minimum=1, months=12)
    checked = 0
    for nhs, row in cohort_world.truth.items():
        if row["objects"] == "1" or not row["emergency_admissions"]:
            continue
        starts = _instants(row["emergency_admissions"])
        first = min(starts)
        # the computation one year after the first stay: that stay sits exactly on the excluded edge
        on_edge = first.replace(year=first.year + 1)
        for now in (on_edge, on_edge - timedelta(seconds=1), first - timedelta(seconds=1), first):
            truth_count = _in_year(starts, now)
            assert months_before(now, 12) == now.replace(year=now.year - 1)
            engine = Evaluator(now).matches(one, by_nhs[nhs])
            assert engine == (truth_count >= 1), (row["person_id"], now, truth_count)
        checked += 1
    assert checked >= 20


async def test_opted_out_people_and_objectors_are_in_no_cohort_and_counted(
    cohort_world: CohortWorld, tmp_path: Path
) -> None:
    """A type 2 and a type 1 opt-out and a new objector vanish from every cohort; the Group counts them."""
    await Cohorts(cohort_world.view).compute(as_of=cohort_world.now)
    ltc = expected(cohort_world, "ltc-3plus")
    ae = expected(cohort_world, "ae-repeat")
    type2, type1, objector = sorted(ltc - ae)[:3]
    opt_out = tmp_path / "opt-out.txt"
    opt_out.write_text(f"{type2}\n{type1},1\n", encoding="utf-8")

    def objects(tx: Tx) -> None:
        add_objection(tx, objector, note="cohort test")

    before = await cohort_group(cohort_world.view, "ltc-3plus", with_members=False)
    assert before is not None
    await cohort_world.store.write(objects)
    try:
        # already gone before any recomputation: members are read minus the register
        assert objector not in await _nhs_of_members(cohort_world, "ltc-3plus")
        cohorts = Cohorts(cohort_world.view, opt_out_file=opt_out)
        runs = {r.group_id: r for r in await cohorts.compute(as_of=cohort_world.now)}
        for cohort in ("ltc-3plus", "emergency-3plus", "ae-repeat"):
            members = await _nhs_of_members(cohort_world, cohort)
            assert not members & {type1, type2, objector}, cohort
            assert members == expected(cohort_world, cohort) - {type1, type2, objector}
        run = runs["ltc-3plus"]
        assert (run.removed_type1, run.removed_type2) == (1, 1)
        objectors_in_world = sum(1 for r in cohort_world.truth.values() if r["objects"] == "1")
        assert run.removed_objection == objectors_in_world + 1
        group = await cohort_group(cohort_world.view, "ltc-3plus", with_members=False)
        assert group is not None
        assert group["quantity"] == len(ltc) - 3
        assert "member" not in group
    finally:
        await cohort_world.store.write(lambda tx: remove_objection(tx, objector))
        await Cohorts(cohort_world.view).compute(as_of=cohort_world.now)


def test_the_window_edge_is_calendar_months() -> None:
    """12 months before 1 March is 1 March a year earlier; before 29 February, the 28th."""
    assert months_before(datetime(2026, 3, 1, 12, tzinfo=UTC), 12) == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert months_before(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2023, 2, 28, tzinfo=UTC)
