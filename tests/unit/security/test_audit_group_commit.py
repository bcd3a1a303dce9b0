"""Group commit of AuditEvents: many requests, few transactions, one verifiable chain, nothing answered unaudited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bcconnect.errors import StoreError
from bcconnect.security import count_audit_events, search_audit_events, verify_audit_chain
from bcconnect.security._audit_writer import AuditWriter
from bcconnect.store import Tx, open_store

pytestmark = pytest.mark.anyio


def _event(n: int) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "id": f"ev-{n}", "recorded": "2026-12-02T06:00:00.000Z"}


async def test_concurrent_requests_share_transactions_and_form_one_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with open_store(url) as store, open_store(url) as elsewhere:
        writer = AuditWriter(store)
        seen_elsewhere: list[int] = []

        async def request(n: int) -> None:
            await writer.append(lambda tx: (_event(n), [f"Patient/p{n}"]))
            # answered only once durable: another connection already finds this request's event
            found = await elsewhere.read(lambda tx: search_audit_events(tx, patient=f"Patient/p{n}"))
            seen_elsewhere.append(len(found))

        async with anyio.create_task_group() as group:
            for n in range(60):
                group.start_soon(request, n)
        assert writer.events == 60
        assert writer.batches < 60  # requests that finished together shared a commit
        assert seen_elsewhere == [1] * 60
        report = await store.read(verify_audit_chain)
        assert (report.ok, report.events) == (True, 60)


async def test_a_failed_flush_fails_every_request_in_it_and_leaves_the_chain_whole(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        writer = AuditWriter(store)
        await writer.append(lambda tx: (_event(0), []))
        outcomes: dict[int, str] = {}
        gate = anyio.Event()

        def build(n: int) -> Any:
            def run(tx: Tx) -> tuple[dict[str, Any], list[str]]:
                if n == 3:
                    raise RuntimeError("disk full")
                return _event(n), []

            return run

        async def request(n: int) -> None:
            await gate.wait()
            try:
                await writer.append(build(n))
                outcomes[n] = "ok"
            except StoreError:
                outcomes[n] = "refused"

        async with anyio.create_task_group() as group:
            for n in range(1, 6):
                group.start_soon(request, n)
            await anyio.lowlevel.checkpoint()
            gate.set()
        assert outcomes[3] == "refused"
        # whoever shared the failed transaction was refused too: never answered as if audited
        refused = sum(1 for v in outcomes.values() if v == "refused")
        stored = await store.read(count_audit_events)
        assert stored == 1 + (5 - refused)
        report = await store.read(verify_audit_chain)
        assert report.ok, report
