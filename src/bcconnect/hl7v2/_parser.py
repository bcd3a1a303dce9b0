"""ER7 text → :class:`Message`: split segments, read the delimiters from MSH, split and unescape values."""

from __future__ import annotations

from bcconnect.errors import ParseError
from bcconnect.hl7v2._encoding import EncodingCharacters, unescape
from bcconnect.hl7v2._message import _SEGMENT_ID, Component, Field, Message, Repetition, Segment, _trim

# MLLP framing bytes a careless sender may leave around a message
_FRAMING = "\x0b\x1c"


def _preview(line: str, enc_field: str) -> str:
    """The segment id and a hint of what follows, never the field contents (they may identify a patient)."""
    head, sep, _ = line.partition(enc_field)
    head = head[:8]
    return f"{head}{sep}…" if sep or len(line) > 8 else head


def _decode(data: bytes) -> str:
    """Bytes as UTF-8, else Windows-1252/Latin-1 (what older EPRs send without saying so in MSH-18)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _split_field(text: str, enc: EncodingCharacters) -> Field:
    if (
        enc.repetition not in text
        and enc.component not in text
        and enc.subcomponent not in text
        and enc.escape not in text
    ):
        # most fields are one plain value: the general path below would build exactly this
        return (((text,),),)
    repetitions: list[Repetition] = []
    for rep_text in text.split(enc.repetition):
        components: list[Component] = []
        for comp_text in rep_text.split(enc.component):
            components.append(tuple(unescape(sub, enc) for sub in comp_text.split(enc.subcomponent)))
        repetitions.append(tuple(_trim(c) for c in components))
    return tuple(repetitions)


def _split_lines(text: str) -> list[str]:
    # trailing spaces may be data (the last field's value); only framing and line ends are noise there
    text = text.lstrip(_FRAMING + "\r\n \t").rstrip(_FRAMING + "\r\n")
    # \r is the standard separator; \n and \r\n appear when files pass through other tools
    return [line for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line.strip()]


def parse_message(text: str | bytes) -> Message:
    r"""Parse one ER7 message.

    Segments are split on ``\r`` (``\n`` and ``\r\n`` are tolerated); delimiters come from MSH-1 and
    MSH-2; escape sequences are decoded. Raises :class:`~bcconnect.errors.ParseError` naming the segment
    and what is wrong when the text is not an HL7 v2 message with MSH-9 (type) and MSH-10 (control id).

    >>> message = parse_message("MSH|^~\\&|PAS|RBK|||20261122||ADT^A01|42|P|2.4\rPID|1||123^^^RBK^MR")
    >>> message.message_type, message.control_id, message.get("PID-3.4")
    ('ADT^A01', '42', 'RBK')
    """
    if isinstance(text, bytes | bytearray):
        text = _decode(bytes(text))
    lines = _split_lines(text)
    if not lines:
        raise ParseError("empty message: no segments")
    first = lines[0]
    if not first.startswith("MSH") or len(first) < 8:
        raise ParseError(f"missing MSH: the message must start with an MSH segment, got {_preview(first, '|')!r}")
    field_sep = first[3]
    msh2 = first[4:].split(field_sep, 1)[0]
    enc = EncodingCharacters.from_msh(field_sep, msh2)

    segments: list[Segment] = []
    for number, line in enumerate(lines, start=1):
        seg_id, sep, rest = line.partition(enc.field)
        if not _SEGMENT_ID.match(seg_id):
            raise ParseError(
                f"segment {number} {_preview(line, enc.field)!r}: segment id must be three upper-case letters/digits"
            )
        if seg_id == "MSH":
            if number != 1:
                raise ParseError(f"segment {number} 'MSH|…': a second MSH header in one message")
            raw_fields = rest.split(enc.field)[1:]  # skip MSH-2: it is the delimiters, not data
            fields: tuple[Field, ...] = (
                ((((enc.field,),),)),
                (((enc.msh2,),),),
                *(_split_field(f, enc) for f in raw_fields),
            )
        else:
            fields = tuple(_split_field(f, enc) for f in rest.split(enc.field)) if sep else ()
        segments.append(Segment(seg_id, fields, enc))

    message = Message(tuple(segments), enc)
    if not message.msh.get("9.1"):
        raise ParseError("segment 1 'MSH|…': MSH-9 (message type) is empty")
    if not message.control_id:
        raise ParseError("segment 1 'MSH|…': MSH-10 (message control id) is empty")
    return message
