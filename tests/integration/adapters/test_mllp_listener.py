"""The MLLP listener over a real loopback socket: ACKs, rejects, failing sinks, several connections."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import anyio.abc
import pytest

from bcconnect.adapters import MllpDelivery, mllp_frame, serve_mllp
from bcconnect.config import AdapterConfig, Hl7Settings, SourceKind
from bcconnect.hl7v2 import AckCode, parse_message

CONFIG = AdapterConfig(
    name="RBK",
    ods_code="RBK",
    kind=SourceKind.HL7V2,
    mapping_set="rbk",
    hl7v2=Hl7Settings(mode="mllp", listen_host="127.0.0.1", listen_port=0),
)


def adt(control_id: str, event: str = "A01") -> str:
    return (
        f"MSH|^~\\&|PAS|RBK|BCC|BCICS|20261122101500||ADT^{event}|{control_id}|P|2.4\r"
        f"PID|1||M{control_id}^^^RBK^MR||Test^Person\r"
    )


class RecordingSink:
    """Keeps every delivery; fails for the control ids it is told to."""

    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.deliveries: list[MllpDelivery] = []
        self.fail_for = fail_for or set()

    async def __call__(self, delivery: MllpDelivery) -> AckCode | None:
        self.deliveries.append(delivery)
        if delivery.record and delivery.record.source_key.split("|")[1] in self.fail_for:
            raise RuntimeError("store down")
        await anyio.lowlevel.checkpoint()
        return None


async def read_acks(stream: anyio.abc.SocketStream, count: int) -> list[Any]:
    """Read ``count`` framed ACKs and parse them."""
    buffer = b""
    while buffer.count(b"\x1c\r") < count:
        buffer += await stream.receive()
    frames = [f.strip(b"\x0b") for f in buffer.split(b"\x1c\r") if f]
    return [parse_message(f) for f in frames]


@pytest.mark.anyio
async def test_acks_each_message_after_the_sink_in_order() -> None:
    """Several frames in one write: each is delivered in order and acknowledged AA with its control id."""
    sink = RecordingSink()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve_mllp, CONFIG, sink)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"".join(mllp_frame(adt(f"C{i}", "A0" + str(i))) for i in range(1, 4)))
                acks = await read_acks(client, 3)
            tg.cancel_scope.cancel()
    assert [(a.get("MSA-1"), a.get("MSA-2")) for a in acks] == [("AA", "C1"), ("AA", "C2"), ("AA", "C3")]
    records = [d.record for d in sink.deliveries]
    assert [r.source_key for r in records if r] == ["RBK|C1", "RBK|C2", "RBK|C3"]
    assert [r.record_type for r in records if r] == ["ADT^A01", "ADT^A02", "ADT^A03"]
    assert records[0] is not None
    assert records[0].payload == adt("C1").encode()


@pytest.mark.anyio
async def test_malformed_and_failing_messages_do_not_stop_the_listener() -> None:
    """A malformed frame gets AR (the sink keeps it as a reject), a sink failure AE; later ones AA."""
    sink = RecordingSink(fail_for={"BOOM"})
    malformed = "MSH|^~\\&|PAS|RBK|||20261122||ADT^A01|BAD1|P|2.4\rP!D|1||X\r"
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve_mllp, CONFIG, sink)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"junk before a frame" + mllp_frame(malformed))
                (ack1,) = await read_acks(client, 1)
                await client.send(mllp_frame("not hl7 at all"))
                (ack2,) = await read_acks(client, 1)
                await client.send(mllp_frame(adt("BOOM")))
                (ack3,) = await read_acks(client, 1)
                await client.send(mllp_frame(adt("GOOD")))
                (ack4,) = await read_acks(client, 1)
            tg.cancel_scope.cancel()
    assert (ack1.get("MSA-1"), ack1.get("MSA-2")) == ("AR", "BAD1")
    assert "segment 2" in (ack1.get("MSA-3") or "")
    assert ack2.get("MSA-1") == "AR"
    assert (ack3.get("MSA-1"), ack3.get("MSA-2")) == ("AE", "BOOM")
    assert (ack4.get("MSA-1"), ack4.get("MSA-2")) == ("AA", "GOOD")
    rejects = [d.reject for d in sink.deliveries if d.reject]
    assert [r.payload for r in rejects] == [malformed.encode(), b"not hl7 at all"]


@pytest.mark.anyio
async def test_serves_several_connections_at_once() -> None:
    """Two senders connected together are both served; a frame split across writes is reassembled."""
    sink = RecordingSink()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve_mllp, replace(CONFIG), sink)
            async with (
                await anyio.connect_tcp("127.0.0.1", port) as first,
                await anyio.connect_tcp("127.0.0.1", port) as second,
            ):
                framed = mllp_frame(adt("S1"))
                await first.send(framed[:10])  # half a frame: the listener must wait for the rest
                await second.send(mllp_frame(adt("S2")))
                (ack_second,) = await read_acks(second, 1)
                await first.send(framed[10:])
                (ack_first,) = await read_acks(first, 1)
            tg.cancel_scope.cancel()
    assert ack_second.get("MSA-2") == "S2"
    assert ack_first.get("MSA-2") == "S1"
    assert {d.record.source_key for d in sink.deliveries if d.record} == {"RBK|S1", "RBK|S2"}
