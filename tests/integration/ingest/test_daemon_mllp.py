"""``bcconnect run``'s push path: the RBK sandbox sends HL7 v2 over MLLP to the daemon's listener, which ACKs
each message only after it is committed, and keeps even the unparseable ones (answered AR) in quarantine."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import anyio
import pytest

from bcconnect.config import Hl7Settings, Settings
from bcconnect.ingest import run_daemon
from bcconnect.store import Store, list_quarantine, resource_types
from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes
from support.loopback import free_port

from .conftest import MAPPINGS, adapters_for

pytestmark = pytest.mark.anyio


async def test_mllp_messages_are_acked_after_commit_and_rejects_kept(tmp_path: Path, sqlite_store: Store) -> None:
    """Every message is answered; AA ones are in the store, AR and AE ones wait in quarantine with the reason."""
    port = free_port()
    faults = FaultSettings(seed=3, hl7_malformed_rate=0.1)
    settings = SandboxSettings(density=0, persons=30, seed=8, trusts=("RBK",), faults=faults)
    async with running_sandboxes(settings, hl7_target=("127.0.0.1", port)) as world:
        configs, _ = adapters_for(world, tmp_path)
        rbk = replace(configs["RBK"], hl7v2=Hl7Settings(mode="mllp", listen_host="127.0.0.1", listen_port=port))
        engine = Settings(root=tmp_path, paths=Settings().paths.__class__(mappings_dir=str(MAPPINGS)))
        async with anyio.create_task_group() as group:
            await group.start(partial(run_daemon, [rbk], settings=engine, store=sqlite_store))
            with anyio.fail_after(60):
                counts = await world.deliver_hl7()
            group.cancel_scope.cancel()
    assert counts["messages"] > 0
    aa, ae, ar = (counts.get(f"acked_{code}", 0) for code in ("aa", "ae", "ar"))
    assert aa + ae + ar == counts["messages"], counts
    # a lost separator either breaks the message (AR: parse) or leaves a key field empty (AE: mapping); only the
    # injected faults are refused, and each refused message waits in quarantine with its reason
    assert ar > 0
    assert ar + ae == world.fault_counts()["RBK"].get("hl7_malformed", 0), counts
    quarantined = await sqlite_store.read(lambda tx: list_quarantine(tx, adapter="rbk"))
    reasons = sorted(q.entry.reason.value for q in quarantined)
    assert reasons == ["mapping"] * ae + ["parse"] * ar, counts
    assert all(q.entry.message for q in quarantined)
    assert "Patient" in await sqlite_store.read(resource_types)
