"""How many SQL statements one secured request costs, once the process is warm: a guard against a per-request
query creeping back (screening facts, token checks, audit appends), counted on the store's connections.

The limits are today's counts. A change that adds a statement to every request makes these fail; one that
removes statements should lower the limit here in the same commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM
from bcconnect.store import _postgres, _sqlite
from support.security_world import ORDINARY_NHS, Endpoint, secured

pytestmark = pytest.mark.anyio

#: scenario → (path, most statements a warm request may run)
LIMITS: dict[str, tuple[str, int]] = {
    # the resource; the screen's one statement (change counters, restricted records, objectors' records); the SQL
    # visibility check; sources' freshness; the audit batch (counters, head, events, patients, head hash). A
    # search has its page instead of the resource and visibility check. Aliases (who is whose person) come from
    # the process's snapshot of the alias table, checked by the screen's counters.
    "read": ("/Patient/p1", 9),
    "identifier": (f"/Patient?identifier={NHS_NUMBER_SYSTEM}|{ORDINARY_NHS}", 8),
    "observations": ("/Observation?patient=p1&_count=50", 8),
    "encounters": ("/Encounter?patient=p1", 8),
}


@pytest.fixture
async def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Endpoint, Counter[str]]]:
    statements: Counter[str] = Counter()
    for cls in (_sqlite.SqliteTx, _postgres.PostgresTx):
        for name in ("execute", "executemany", "query", "query_one"):
            original: Callable[..., Any] = getattr(cls, name)

            def counting(self: Any, sql: str, *args: Any, _original: Callable[..., Any] = original) -> Any:
                statements[" ".join(sql.split())[:110]] += 1
                return _original(self, sql, *args)

            monkeypatch.setattr(cls, name, counting)
    async with secured(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "data") as endpoint:
        yield endpoint, statements


@pytest.mark.parametrize("scenario", sorted(LIMITS))
async def test_a_warm_request_runs_no_more_statements_than_today(
    counted: tuple[Endpoint, Counter[str]], scenario: str
) -> None:
    endpoint, statements = counted
    path, limit = LIMITS[scenario]
    headers = endpoint.token()
    for _ in range(2):  # warm: the token, the screening facts and the statement caches
        assert (await endpoint.client.get(path, headers=headers)).status_code == 200
    statements.clear()
    assert (await endpoint.client.get(path, headers=headers)).status_code == 200
    used = sum(statements.values())
    assert used <= limit, f"{scenario}: {used} statements ({dict(statements)}), at most {limit} expected"


async def test_the_guard_catches_a_query_added_to_every_request(
    counted: tuple[Endpoint, Counter[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An injected per-request lookup in the screen (the kind of cost the caches removed) breaks the limit."""
    from bcconnect.security import ScreenFacts

    endpoint, statements = counted
    original = ScreenFacts.facts

    def with_extra_lookup(self: ScreenFacts, tx: Any, confined: str | None = None) -> Any:
        tx.query("SELECT COUNT(*) FROM patient_objections")
        return original(self, tx, confined)

    monkeypatch.setattr(ScreenFacts, "facts", with_extra_lookup)
    path, limit = LIMITS["read"]
    headers = endpoint.token()
    for _ in range(2):
        await endpoint.client.get(path, headers=headers)
    statements.clear()
    assert (await endpoint.client.get(path, headers=headers)).status_code == 200
    assert sum(statements.values()) > limit
