"""``bcconnect serve`` freezes its start-up heap once it listens, so a request's garbage collection does not walk
the hundreds of thousands of objects the process holds for good (the tail of ``$everything``'s cold first page)."""

from __future__ import annotations

import gc
from pathlib import Path

import anyio
import pytest

from bcconnect.cli.serve_cmd import serve_api
from bcconnect.store import open_store

from .conftest import no_auth_settings

pytestmark = pytest.mark.anyio


async def test_the_served_process_freezes_what_start_up_left_and_thaws_it_on_stop(
    tmp_path: Path, store_url: str
) -> None:
    gc.unfreeze()  # whatever an earlier test left frozen: the count below is this start-up's alone
    assert gc.get_freeze_count() == 0
    frozen_when_ready: list[int] = []
    ready = anyio.Event()

    async def on_ready() -> None:
        frozen_when_ready.append(gc.get_freeze_count())
        ready.set()

    async with open_store(store_url) as store, anyio.create_task_group() as group:
        settings = no_auth_settings(tmp_path)
        group.start_soon(lambda: serve_api(settings, store=store, allow_no_auth=True, on_ready=on_ready))
        with anyio.fail_after(30):
            await ready.wait()
        group.cancel_scope.cancel()
    # the modules, settings, view and pools alive at start-up are all out of the collector's reach
    assert len(frozen_when_ready) == 1
    assert frozen_when_ready[0] > 10_000
    assert gc.get_freeze_count() == 0  # a process that goes on after serving collects them again
