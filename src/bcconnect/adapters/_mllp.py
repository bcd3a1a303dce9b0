"""HL7 v2 over MLLP: a TCP listener that hands each framed message to a sink and acknowledges it.

Framing is ``0x0B`` + message + ``0x1C 0x0D``. Several senders may be connected at once; the messages of one
connection are handled strictly one after another, and the next frame is not read before the previous one
was acknowledged, so a sender that sends one patient's events over one connection sees them stored in the
order it sent them. The ACK goes out only after the sink returned: ``AA`` once a record was taken in, ``AR``
for a message that could not be read (the sink still receives it as a reject, so nothing is lost), ``AE`` when
the sink failed (the sender should resend). A bad frame or a failing sink never ends the listener.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio
import anyio.abc
import structlog

from bcconnect.adapters._hl7_record import hl7_record
from bcconnect.adapters._types import MllpDelivery, RawRecord
from bcconnect.config import AdapterConfig
from bcconnect.hl7v2 import DEFAULT_ENCODING, AckCode, build_ack, escape

log = structlog.get_logger()

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
#: a frame larger than this ends the connection (a sender that never sends the end bytes)
MAX_FRAME_BYTES = 16 * 1024 * 1024

#: called for each message; returns the ACK code to send (``None``: AA for records, AR for rejects)
MllpSink = Callable[[MllpDelivery], Awaitable[AckCode | None]]

_connection_ids = itertools.count(1)


def mllp_frame(message: bytes | str) -> bytes:
    """Wrap one message in MLLP framing bytes.

    >>> mllp_frame("MSH|x")
    b'\\x0bMSH|x\\x1c\\r'
    """
    data = message.encode() if isinstance(message, str) else message
    return START_BLOCK + data + END_BLOCK


def _fallback_ack(payload: bytes, code: AckCode, text: str) -> str:
    """An ACK for bytes that did not parse: echo MSH-10 if it can be found at all."""
    first = payload.decode("latin-1").replace("\n", "\r").split("\r", 1)[0]
    fields = first.split("|")
    control_id = fields[9] if first.startswith("MSH|") and len(fields) > 9 else ""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    enc = DEFAULT_ENCODING
    msh = f"MSH|{enc.msh2}|||||{stamp}||ACK|ACK{escape(control_id)[:190]}|P|2.4"
    return f"{msh}\rMSA|{code.value}|{escape(control_id)}|{escape(text)[:200]}\r"


class _Connection:
    """One sender's connection: split frames, handle each in order, answer each with an ACK."""

    def __init__(self, config: AdapterConfig, sink: MllpSink, stream: anyio.abc.ByteStream) -> None:
        self._source = config.name
        self._timeout = config.fetch.timeout_seconds
        self._sink = sink
        self._stream = stream
        self._id = next(_connection_ids)

    async def run(self) -> None:
        buffer = bytearray()
        while True:
            try:
                chunk = await self._stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            buffer += chunk
            while (payload := self._next_frame(buffer)) is not None:
                ack = await self._handle(payload)
                with anyio.fail_after(self._timeout):
                    await self._stream.send(mllp_frame(ack.encode()))
            if len(buffer) > MAX_FRAME_BYTES:
                log.warning("mllp_frame_too_large", source=self._source, connection=self._id, size=len(buffer))
                return

    def _next_frame(self, buffer: bytearray) -> bytes | None:
        start = buffer.find(START_BLOCK)
        if start == -1:
            if buffer.strip():
                log.warning("mllp_bytes_outside_frame", source=self._source, connection=self._id, size=len(buffer))
            buffer.clear()
            return None
        if start > 0:
            if bytes(buffer[:start]).strip():
                log.warning("mllp_bytes_outside_frame", source=self._source, connection=self._id, size=start)
            del buffer[:start]
        end = buffer.find(END_BLOCK, 1)
        if end == -1:
            return None
        payload = bytes(buffer[1:end])
        del buffer[: end + len(END_BLOCK)]
        return payload

    async def _handle(self, payload: bytes) -> str:
        message, item = hl7_record(payload)
        if isinstance(item, RawRecord):
            assert message is not None
            try:
                code = await self._sink(MllpDelivery(record=item)) or AckCode.AA
                text = "" if code is AckCode.AA else "not accepted"
            except Exception as exc:  # noqa: BLE001 - a failing sink must not end the connection; AE asks for a resend
                log.error("mllp_sink_failed", source=self._source, error=type(exc).__name__)
                code, text = AckCode.AE, "the message could not be stored; please resend"
            log.info(
                "mllp_message",
                source=self._source,
                connection=self._id,
                message_type=item.record_type,
                ack=code.value,
            )
            return build_ack(message, code, text)
        try:
            code = await self._sink(MllpDelivery(reject=item)) or AckCode.AR
        except Exception as exc:  # noqa: BLE001 - same: the sender still gets an answer
            log.error("mllp_sink_failed", source=self._source, error=type(exc).__name__)
            code = AckCode.AE
        log.warning("mllp_message_rejected", source=self._source, connection=self._id, ack=code.value)
        if message is not None:
            return build_ack(message, code, item.reason)
        return _fallback_ack(payload, code, item.reason)


async def serve_mllp(
    config: AdapterConfig,
    sink: MllpSink,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``config.hl7v2.listen_host:listen_port`` until cancelled; reports the bound port.

    Use with ``port = await task_group.start(serve_mllp, config, sink)`` (``listen_port = 0`` picks a free
    port). Each message is handed to ``sink`` as an :class:`MllpDelivery`; see the module docstring for the
    ACK rules and the ordering guarantee.
    """
    listener = await anyio.create_tcp_listener(local_host=config.hl7v2.listen_host, local_port=config.hl7v2.listen_port)
    async with listener:
        # S610 mistakes anyio's typed attribute lookup for Django's QuerySet.extra
        port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
        log.info("mllp_listening", source=config.name, port=port)
        task_status.started(port)

        async def handle(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await _Connection(config, sink, stream).run()

        await listener.serve(handle)
