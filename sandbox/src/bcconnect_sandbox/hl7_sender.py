"""RBK's HL7 v2 feed: pending changes become messages, sent over MLLP and/or dropped as files.

The sandbox is the sender. Over MLLP it sends one framed message, waits for the ACK, resends after
``hl7_ack_timeout`` (up to ``hl7_attempts`` tries, reconnecting each time) and moves on after ``AE``/``AR``
(the receiver keeps the message). File drop writes ``<sequence>_<control id>.hl7`` via a temporary name and a
rename, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from bcconnect_sandbox.dialects.hl7 import messages
from bcconnect_sandbox.faults import FaultPlan, MessageFault
from bcconnect_sandbox.settings import SandboxSettings
from bcconnect_sandbox.sources import SourcePatient
from bcconnect_sandbox.state import TrustState, Version

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c\x0d"


def frame(message: str) -> bytes:
    """MLLP framing of one message.

    >>> frame("MSH|^~\\\\&|X\\r")[:1], frame("x")[-2:]
    (b'\\x0b', b'\\x1c\\r')
    """
    return START_BLOCK + message.encode("utf-8") + END_BLOCK


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK (``AA``, ``AE``, ``AR``; ``??`` when there is none)."""
    for seg in ack.strip(START_BLOCK + END_BLOCK).decode("utf-8", "replace").split("\r"):
        if seg.startswith("MSA|"):
            fields = seg.split("|")
            return fields[1] or "??"
    return "??"


def corrupt(message: str) -> str:
    """A malformed copy: the second segment loses its first field separator (``PID1|`` …)."""
    segments = message.split("\r")
    if len(segments) > 2:
        segments[1] = segments[1].replace("|", "", 1)
    return "\r".join(segments)


class Hl7Sender:
    """Turns RBK's versions into messages and delivers them."""

    def __init__(
        self,
        settings: SandboxSettings,
        state: TrustState,
        plan: FaultPlan,
        *,
        target: tuple[str, int] | None,
        drop_dir: Path | None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.plan = plan
        self.target = target
        self.drop_dir = drop_dir
        self._next_tick = 0
        self._file_seq = 0
        self._stream: anyio.abc.SocketStream | None = None

    def pending(self, limit: int | None = None) -> Iterator[tuple[int, str]]:
        """``(tick, message)`` for changes not yet delivered, in order (advances the cursor as it goes)."""
        produced = 0
        for version in self.state.history(None, self._next_tick):
            if limit is not None and produced >= limit:
                return
            self._next_tick = version.tick + 1
            if not version.kind:
                continue
            for message in self._render(version):
                produced += 1
                yield version.tick, message

    def _render(self, version: Version) -> list[str]:
        record = version.record
        event = "new" if version.version == 1 else "update"
        if record is None:
            record, event = self.state.base_record(version.id), "delete"
            if record is None:
                return []
        elif (
            record.kind == "patient"
            and isinstance(record.fact, SourcePatient)
            and record.fact.replaced_by
            and version.version > 1
        ):
            event = "merge"
        owner = self.state.read(record.patient_id)
        patient = owner.record.fact if owner and owner.record else record.fact
        if not isinstance(patient, SourcePatient):
            return []
        control = f"RBK{version.tick:012d}"
        return messages(record, patient, event=event, control=control, at=self.state.instant(version.tick))

    async def deliver(self, *, limit: int | None = None) -> dict[str, int]:
        """Deliver every pending message (or ``limit`` of them); returns counts by outcome."""
        if self.target is None and self.drop_dir is None:
            raise ValueError("RBK has nowhere to send: give hl7_target and/or hl7_drop_dir")
        counts: Counter[str] = Counter()
        try:
            for message in self._with_faults(self.pending(limit), counts):
                counts["messages"] += 1
                if self.drop_dir is not None:
                    self._drop(message)
                    counts["files"] += 1
                if self.target is not None:
                    counts[await self._send(message)] += 1
        finally:
            await self._close()
        return dict(sorted(counts.items()))

    def _with_faults(self, items: Iterator[tuple[int, str]], counts: Counter[str]) -> Iterator[str]:
        held: str | None = None
        for _, message in items:
            fault = self.plan.next_message()
            if fault is MessageFault.MALFORMED:
                message = corrupt(message)
                self.plan.count("hl7_malformed")
            if held is not None:
                yield message
                yield held
                held = None
                continue
            if fault is MessageFault.OUT_OF_ORDER:
                held = message
                self.plan.count("hl7_out_of_order")
                continue
            yield message
            if fault is MessageFault.DUPLICATE:
                self.plan.count("hl7_duplicate")
                yield message
        if held is not None:
            yield held

    def _drop(self, message: str) -> None:
        assert self.drop_dir is not None
        self.drop_dir.mkdir(parents=True, exist_ok=True)
        self._file_seq += 1
        msh = message.split("\r", 1)[0].split("|")
        control = msh[9] if len(msh) > 9 else "unknown"
        name = f"{self._file_seq:09d}_{control}.hl7"
        temp = self.drop_dir / f".{name}.tmp"
        temp.write_bytes(message.encode("utf-8"))
        os.replace(temp, self.drop_dir / name)

    async def _send(self, message: str) -> str:
        """Send one message until it is acknowledged; returns the outcome's counter name."""
        assert self.target is not None
        for attempt in range(self.settings.hl7_attempts):
            if attempt:
                self.plan.count("hl7_resent")
            try:
                stream = await self._connect()
                await stream.send(frame(message))
                with anyio.fail_after(self.settings.hl7_ack_timeout):
                    ack = await self._read_frame(stream)
            except (TimeoutError, OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._close()
                continue
            return {
                "AA": "acked_aa",
                "CA": "acked_aa",
                "AE": "acked_ae",
                "CE": "acked_ae",
                "AR": "acked_ar",
                "CR": "acked_ar",
            }.get(ack_code(ack), "acked_other")
        return "undelivered"

    async def _connect(self) -> anyio.abc.SocketStream:
        assert self.target is not None
        if self._stream is None:
            with anyio.fail_after(self.settings.hl7_ack_timeout):
                self._stream = await anyio.connect_tcp(*self.target)
        return self._stream

    async def _read_frame(self, stream: anyio.abc.SocketStream) -> bytes:
        buffer = b""
        while END_BLOCK not in buffer:
            buffer += await stream.receive()
        return buffer[: buffer.index(END_BLOCK) + len(END_BLOCK)]

    async def _close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with anyio.CancelScope(shield=True):
                await stream.aclose()
