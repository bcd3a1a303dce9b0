"""RBK's HL7 v2 feed over MLLP (anyio sockets) and file drop, with its faults."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes
from bcconnect_sandbox.testing import mllp_receiver

pytestmark = pytest.mark.anyio
SETTINGS = SandboxSettings(density=0, persons=150, seed=6, trusts=("RBK",), hl7_ack_timeout=0.3)


def _event(message: str) -> str:
    return message.split("\r", 1)[0].split("|")[8]


async def test_mllp_delivers_every_message_once_with_acks(tmp_path: Path) -> None:
    """Every pending message is sent and acknowledged; message types cover ADT, ORU and REF; files match."""
    async with (
        mllp_receiver() as receiver,
        running_sandboxes(SETTINGS, hl7_target=("127.0.0.1", receiver.port), hl7_drop_dir=tmp_path) as world,
    ):
        counts = await world.deliver_hl7()
        assert counts["messages"] == counts["acked_aa"] == counts["files"] == len(receiver.received)
        events = Counter(_event(m) for m in receiver.received)
        assert {
            "ADT^A28^ADT_A05",
            "ORU^R01^ORU_R01",
            "REF^I12^REF_I12",
            "ADT^A01^ADT_A01",
            "ADT^A03^ADT_A03",
            "ADT^A04^ADT_A01",
        } <= set(events)
        controls = [m.split("\r", 1)[0].split("|")[9] for m in receiver.received]
        assert len(set(controls)) == len(controls)
        files = sorted(tmp_path.iterdir())  # noqa: ASYNC240 - a few small files in a test
        assert [f.read_bytes().decode() for f in files] == receiver.received
        assert all(f.name.endswith(f"_{ctl}.hl7") for f, ctl in zip(files, controls, strict=True))
        pid = next(s for s in receiver.received[0].split("\r") if s.startswith("PID|"))
        assert "^^^RBK^MR~" in pid
        assert "^^^NHS^NH" in pid
        assert any("\\T\\" in m for m in receiver.received)  # ER7 escapes in free text
        assert await world.deliver_hl7() == {}  # nothing left
        await world.advance(days=14)
        later = await world.deliver_hl7()
        assert later["messages"] > 0


async def test_merges_arrive_as_a40(tmp_path: Path) -> None:
    """Merged duplicates are announced with ADT^A40 and an MRG segment naming the retired MRN."""
    settings = SandboxSettings(density=0, persons=600, seed=6, trusts=("RBK",))
    async with running_sandboxes(settings, hl7_drop_dir=tmp_path) as world:
        await world.deliver_hl7()
        texts = [f.read_bytes().decode() for f in tmp_path.iterdir()]  # noqa: ASYNC240 - small test files
        merges = [t for t in texts if "ADT^A40" in t]
        assert merges
        assert all("\rMRG|" in m for m in merges)


async def test_no_ack_means_resend_and_errors_move_on() -> None:
    """A silent receiver gets the message again; AE and AR are counted and the sender goes on."""

    def answer(message: str, n: int) -> str | None:
        return None if n == 1 else "AE" if n == 3 else "AR" if n == 4 else "AA"

    async with (
        mllp_receiver(answer) as receiver,
        running_sandboxes(SETTINGS, hl7_target=("127.0.0.1", receiver.port)) as world,
    ):
        counts = await world.deliver_hl7(limit=5)
        assert receiver.received[0] == receiver.received[1]  # resent after the ACK timeout
        assert counts["acked_ae"] == 1
        assert counts["acked_ar"] == 1
        assert world.fault_counts()["RBK"]["hl7_resent"] == 1


async def test_malformed_duplicate_and_out_of_order_messages(tmp_path: Path) -> None:
    """Each HL7 fault knob shows in the files and in the counts."""
    faults = FaultSettings(seed=3, hl7_malformed_rate=0.1, duplicate_rate=0.1, out_of_order_rate=0.1)
    settings = SandboxSettings(density=0, persons=100, seed=6, trusts=("RBK",), faults=faults)
    async with running_sandboxes(settings, hl7_drop_dir=tmp_path) as world:
        counts = await world.deliver_hl7()
        faults_seen = world.fault_counts()["RBK"]
        texts = [f.read_bytes().decode() for f in sorted(tmp_path.iterdir())]  # noqa: ASYNC240 - small test files
        assert counts["files"] == len(texts)
        malformed = {t.split("\r", 1)[0].split("|")[9] for t in texts if t.split("\r")[1][3:4] != "|"}
        assert len(malformed) == faults_seen["hl7_malformed"] > 0
        controls = Counter(t.split("\r", 1)[0].split("|")[9] for t in texts)
        assert sum(n - 1 for n in controls.values()) == faults_seen["hl7_duplicate"] > 0
        assert faults_seen["hl7_out_of_order"] > 0
