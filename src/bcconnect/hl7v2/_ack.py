"""Acknowledgements: the ACK a receiver returns for each message (original mode)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from bcconnect.hl7v2._encoding import escape
from bcconnect.hl7v2._message import Message


class AckCode(enum.Enum):
    """MSA-1: accepted, error (the message was looked at and refused), reject (not even readable)."""

    AA = "AA"
    AE = "AE"
    AR = "AR"


def build_ack(message: Message, code: AckCode, text: str = "", *, now: datetime | None = None) -> str:
    """The ACK for ``message``: MSH with sender and receiver swapped, MSA with ``code`` and its control id.

    ``now`` fixes MSH-7 (tests); the default is the current UTC time. Segments end with ``\\r``.
    """
    enc = message.encoding
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    original = message.control_id

    def raw(path: str) -> str:
        return escape(message.msh.get(path) or "", enc)

    trigger = message.trigger_event or ""
    msh = enc.field.join(
        [
            "MSH",
            enc.msh2,
            raw("5.1"),
            raw("6.1"),
            raw("3.1"),
            raw("4.1"),
            stamp,
            "",
            enc.component.join(["ACK", escape(trigger, enc), "ACK"]) if trigger else "ACK",
            escape(f"ACK{original}"[:199], enc),
            raw("11.1") or "P",
            raw("12.1") or "2.4",
        ]
    )
    msa = enc.field.join(["MSA", code.value, escape(original, enc)] + ([escape(text, enc)] if text else []))
    return f"{msh}\r{msa}\r"
