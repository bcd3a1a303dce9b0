"""Cohort definitions: the format, composition (all/any/not, age bands, borough, practice), the window edges,
what counts as one stay, and the errors a wrong file gets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bcconnect.cohorts import (
    Evaluator,
    FactCollector,
    PersonFacts,
    due_in_seconds,
    load_definitions,
    load_places,
    parse_definitions,
)
from bcconnect.cohorts._compute import Cohorts
from bcconnect.cohorts._tables import save_run
from bcconnect.errors import ConfigError
from bcconnect.store import open_store
from bcconnect.view import View

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SETS = {"condition_sets": {"diabetes": ["44054006"], "copd": ["13645005"], "asthma": ["195967001"]}}


def _rule(rule: dict[str, object]) -> object:
    return parse_definitions({**SETS, "cohort": {"c": {"title": "C", "rule": rule}}}).cohorts[0].rule


def _facts(**kw: object) -> PersonFacts:
    return PersonFacts("p", **kw)  # type: ignore[arg-type]


def test_the_packaged_definitions_load_with_the_three_defaults() -> None:
    """ltc-3plus over 13 listed conditions, emergency-3plus and ae-repeat, each with a title."""
    defs = load_definitions()
    assert [c.id for c in defs.cohorts] == ["ltc-3plus", "emergency-3plus", "ae-repeat"]
    ltc = defs.cohort("ltc-3plus")
    assert ltc is not None
    assert len(ltc.rule.names) == 13
    assert ltc.rule.minimum == 3
    assert load_places()["DY4"] == "Sandwell"


def test_all_any_not_age_borough_and_practice_compose() -> None:
    """Older Dudley people with diabetes or COPD, not at practice M87001."""
    rule = _rule(
        {
            "all": [
                {"age": {"min": 65, "max": 84}},
                {"borough": ["Dudley"]},
                {
                    "any": [
                        {"conditions": {"sets": ["diabetes"], "min": 1}},
                        {"conditions": {"sets": ["copd"], "min": 1}},
                    ]
                },
                {"not": {"practice": "M87001"}},
            ]
        }
    )
    at = Evaluator(NOW)
    base = {"birth_date": date(1950, 1, 1), "borough": "Dudley", "practice": "M87002", "condition_sets": {"copd"}}
    assert at.matches(rule, _facts(**base))  # type: ignore[arg-type]
    assert not at.matches(rule, _facts(**{**base, "practice": "M87001"}))  # type: ignore[arg-type]
    assert not at.matches(rule, _facts(**{**base, "borough": "Walsall"}))  # type: ignore[arg-type]
    assert not at.matches(rule, _facts(**{**base, "condition_sets": {"asthma"}}))  # type: ignore[arg-type]
    assert not at.matches(rule, _facts(**{**base, "birth_date": date(1940, 1, 1)}))  # type: ignore[arg-type]
    # the 65th birthday on the computation day counts; the day before does not
    assert at.matches(rule, _facts(**{**base, "birth_date": date(1961, 6, 1)}))  # type: ignore[arg-type]
    assert not at.matches(rule, _facts(**{**base, "birth_date": date(1961, 6, 2)}))  # type: ignore[arg-type]


def test_the_twelve_month_window_edge_on_both_sides() -> None:
    """Exactly 12 months before is out, a minute after it is in; the computation instant is in, after it out."""
    rule = _rule({"emergency_admissions": {"min": 1, "months": 12}})
    edge = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    at = Evaluator(NOW)

    def stay(start: datetime) -> PersonFacts:
        return _facts(stays=[(start, start + timedelta(days=2))])

    assert not at.matches(rule, stay(edge))
    assert at.matches(rule, stay(edge + timedelta(minutes=1)))
    assert at.matches(rule, stay(NOW))
    assert not at.matches(rule, stay(NOW + timedelta(minutes=1)))


def test_the_same_stay_from_two_trusts_counts_once_and_touching_stays_twice() -> None:
    """Overlapping periods are one stay (even chained through a third); a stay ending as another starts is two."""
    day = timedelta(days=1)
    start = NOW - 30 * day
    rule_two = _rule({"emergency_admissions": {"min": 2, "max": 2}})
    overlapping = [(start, start + 3 * day), (start + timedelta(hours=2), start + 3 * day + timedelta(hours=5))]
    chained = [*overlapping, (start + 3 * day + timedelta(hours=4), start + 5 * day)]
    touching = [(start, start + 3 * day), (start + 3 * day, start + 6 * day)]
    at = Evaluator(NOW)
    assert not at.matches(rule_two, _facts(stays=overlapping))
    assert not at.matches(rule_two, _facts(stays=chained))
    assert at.matches(rule_two, _facts(stays=touching))


def test_a_condition_counts_when_active_and_not_refuted() -> None:
    """Resolved or refuted Conditions do not count; one without clinicalStatus does; other systems do not."""
    collector = FactCollector(load_definitions(), {})

    def condition(
        code: str, clinical: str | None, verification: str = "confirmed", system: str = "http://snomed.info/sct"
    ) -> dict[str, object]:
        body: dict[str, object] = {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": system, "code": code}]},
            "verificationStatus": {"coding": [{"code": verification}]},
        }
        if clinical:
            body["clinicalStatus"] = {"coding": [{"code": clinical}]}
        return body

    collector.condition(condition("44054006", "resolved"))
    collector.condition(condition("13645005", "active", "refuted"))
    collector.condition(condition("195967001", "active", system="http://example.org/local"))
    collector.condition(condition("84114007", None))
    collector.condition(condition("49436004", "recurrence"))
    collector.patient({"resourceType": "Patient", "id": "p", "meta": {"tag": [{"code": "golden"}]}})
    assert collector.persons["p"].condition_sets == {"heart_failure", "atrial_fibrillation"}


def test_a_wrong_file_gets_every_error_at_once(tmp_path: Path) -> None:
    """Unknown rule, unknown set, unknown borough, missing title, bad id: one ConfigError naming each."""
    path = tmp_path / "cohorts.toml"
    path.write_text(
        '[condition_sets]\ncopd = ["13645005"]\n'
        '[cohort.a]\nrule = { colour = "blue" }\n'
        '[cohort.b]\ntitle = "B"\n'
        'rule = { all = [{ conditions = { sets = ["gout"], min = 1 } }, { borough = "Leeds" }] }\n'
        '[cohort."bad id"]\ntitle = "C"\nrule = { age = { min = -1 } }\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_definitions(path)
    text = str(caught.value)
    for needle in ("cohort.a: title is required", "unknown rule 'colour'", "unknown condition set gout",
                   "unknown borough Leeds", "an id is 1–64", "min must be a non-negative integer"):  # fmt: skip
        assert needle in text, needle


@pytest.mark.anyio
async def test_the_schedule_is_due_when_a_cohort_was_never_or_long_ago_computed(tmp_path: Path) -> None:
    """Never computed: due now; computed ten minutes ago with a 60-minute interval: due in 50 minutes."""
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        cohorts = Cohorts(View(store))
        assert await due_in_seconds(cohorts, 60, now=NOW) == 0
        from bcconnect.cohorts import CohortRun

        for c in cohorts.definitions.cohorts:
            run = CohortRun(c.id, c.title, "", {}, "2026-06-01T11:50:00Z", 1, 0, 0, 0, 0, 0)
            await store.write(lambda tx, run=run: save_run(tx, run, []))
        assert await due_in_seconds(cohorts, 60, now=NOW) == 50 * 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_schedule_computes_at_once_when_due_then_waits(tmp_path: Path) -> None:
    """``run_schedule`` (what ``bcconnect run`` starts) computes every cohort when due, then sleeps."""
    import anyio

    from bcconnect.cohorts import cohort_runs, run_schedule

    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        cohorts = Cohorts(View(store))
        async with anyio.create_task_group() as group:
            group.start_soon(run_schedule, cohorts, 60)
            with anyio.fail_after(30):
                while len(await cohort_runs(store)) < len(cohorts.definitions.cohorts):  # noqa: ASYNC110 - polls the store, no event to wait on
                    await anyio.sleep(0.05)
            first = {r.group_id: r.version for r in await cohort_runs(store)}
            await anyio.sleep(0.5)  # not due again for an hour: nothing recomputed meanwhile
            assert {r.group_id: r.version for r in await cohort_runs(store)} == first
            group.cancel_scope.cancel()
