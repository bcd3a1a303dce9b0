"""The public cohort reads: members minus the current opt-out list, the Group resource, an unknown cohort."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.cohorts import (
    COMPUTED_EXTENSION,
    REMOVED_EXTENSION,
    CohortRun,
    Member,
    cohort_group,
    cohort_groups,
    cohort_member_person_ids,
)
from bcconnect.cohorts._tables import save_opt_out, save_run
from bcconnect.security import NationalOptOut
from bcconnect.store import open_store

pytestmark = pytest.mark.anyio

RUN = CohortRun(
    group_id="ltc-3plus",
    title="Three or more long-term conditions",
    description="People with 3+ conditions & more",
    definition={"all": [{"conditions": {"min": 3}}]},
    computed_at="2026-06-01T02:00:00Z",
    version=1,
    member_count=3,
    removed_type1=1,
    removed_type2=2,
    removed_objection=0,
    elapsed_ms=5,
)
MEMBERS = [
    Member("p-a", "9990000018", "Dudley", "M88001"),
    Member("p-b", "9990000026", "Walsall", "M91001"),
    Member("p-c", None, None, None),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_members_are_read_minus_anyone_opted_out_since(store_url: str) -> None:
    """A person who opts out after the computation is gone from members and quantity, and counted as removed
    (SQLite and PostgreSQL)."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: save_run(tx, RUN, MEMBERS))
        assert await cohort_member_person_ids(store, "ltc-3plus") == ["p-a", "p-b", "p-c"]
        await store.write(lambda tx: save_opt_out(tx, NationalOptOut(frozenset({"9990000026"})), "now"))
        assert await cohort_member_person_ids(store, "ltc-3plus") == ["p-a", "p-c"]
        group = await cohort_group(store, "ltc-3plus")
        assert group is not None
        assert group["type"] == "person"
        assert group["actual"] is True
        assert group["quantity"] == 2
        assert [m["entity"]["reference"] for m in group["member"]] == ["Patient/p-a", "Patient/p-c"]
        extensions = {e["url"]: e for e in group["extension"]}
        assert extensions[COMPUTED_EXTENSION]["valueDateTime"] == RUN.computed_at
        removed = {e["url"]: e["valueInteger"] for e in extensions[REMOVED_EXTENSION]["extension"]}
        assert removed == {"nationalOptOut": 2, "type1OptOut": 1, "objection": 0, "sinceComputed": 1, "total": 4}
        assert "&amp;" in group["text"]["div"]
        (summary,) = await cohort_groups(store)
        assert "member" not in summary
        assert summary["quantity"] == 2


async def test_an_unknown_cohort_is_none(tmp_path: Path) -> None:
    """None (not an empty list) tells the caller there is no such cohort."""
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert await cohort_member_person_ids(store, "nope") is None
        assert await cohort_group(store, "nope") is None
