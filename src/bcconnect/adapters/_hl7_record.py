"""One HL7 v2 message as a raw record (shared by the file drop and the MLLP listener)."""

from __future__ import annotations

from bcconnect.adapters._types import RawRecord, RawReject
from bcconnect.errors import ParseError
from bcconnect.hl7v2 import Message, parse_message

#: record_type of something that did not parse far enough to have a message type
UNPARSED_HL7 = "hl7v2"


def hl7_record(payload: bytes) -> tuple[Message | None, RawRecord | RawReject]:
    """Parse enough to key the message: ``source_key`` is ``"<MSH-4>|<MSH-10>"``, ``record_type`` MSH-9,
    ``version`` the sender's sequence number (MSH-13) when it sends one, ``last_updated`` MSH-7 as sent.

    An unparseable message becomes a :class:`RawReject` whose reason is the parser's message, so it is kept.
    """
    try:
        message = parse_message(payload)
    except ParseError as exc:
        return None, RawReject(payload, UNPARSED_HL7, str(exc))
    facility = message.sending_facility
    if not facility:
        return message, RawReject(payload, message.message_type, "MSH-4 (sending facility) is empty")
    record = RawRecord(
        record_type=message.message_type,
        source_key=f"{facility}|{message.control_id}",
        payload=payload,
        version=(message.msh.get("13") or "").strip() or None,
        last_updated=message.timestamp,
    )
    return message, record
