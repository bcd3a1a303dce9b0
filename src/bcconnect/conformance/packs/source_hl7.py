"""The HL7 v2 source pack: a trust's sender, judged by listening as the receiver over MLLP.

Target: ``mllp://HOST:PORT`` — where the runner listens; point the trust's sender at it. The runner
acknowledges with ``AA`` except two probes: it withholds the ACK of the second message (a sender must resend
the same message, same MSH-10) and answers ``AE`` to the fourth (a sender must move on, not resend).
Options: ``messages`` (stop after this many distinct messages, default 40), ``wait`` (seconds to wait for the
first message, default 60), ``idle`` (seconds of silence that end the capture, default 15).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import anyio.abc

from bcconnect.conformance._catalogue_file import load_catalogue
from bcconnect.conformance._context import Context, require
from bcconnect.conformance._model import Exchange, Failed, NotApplicable, Pack
from bcconnect.fhir.nhs_number import is_valid

PACK = Pack(load_catalogue("source-hl7"))
check = PACK.check
MLLP = "https://www.hl7.org/documentcenter/public/wg/inm/mllp_transport_specification.PDF"
START, END = b"\x0b", b"\x1c\x0d"
#: the message types (MSH-9 code^event) the adapter consumes
CONSUMED = frozenset(
    {"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A28", "ADT^A31", "ADT^A40", "ORU^R01", "REF^I12"}
)
WITHHELD_ACK = 2
ERROR_ACK = 4


@dataclass(slots=True)
class Received:
    """One frame as it arrived, and the ACK sent back (None: withheld)."""

    raw: bytes
    text: str
    connection: int
    ack: str | None
    at: float


@dataclass(slots=True)
class Capture:
    """What the listener saw: frames, bytes outside frames, and the probes' subjects."""

    frames: list[Received] = field(default_factory=list)
    stray_bytes: list[bytes] = field(default_factory=list)
    withheld_control: str | None = None
    error_control: str | None = None


def control_id(message: str) -> str:
    """MSH-10 of a message ('' when unreadable)."""
    msh = message.split("\r", 1)[0].split("|")
    return msh[9] if len(msh) > 9 else ""


def segments(message: str) -> list[list[str]]:
    """The message's segments split into fields (MSH-1 is the separator itself, so MSH fields shift by one)."""
    return [s.split("|") for s in message.split("\r") if s]


def message_type(message: str) -> str:
    """MSH-9 as ``code^event``."""
    msh = message.split("\r", 1)[0].split("|")
    return "^".join(msh[8].split("^")[:2]) if len(msh) > 8 else ""


def _ack(message: str, code: str) -> bytes:
    control = control_id(message)
    text = f"MSH|^~\\&|CONFORMANCE|BCC|||{time.strftime('%Y%m%d%H%M%S')}||ACK|C{control}|P|2.4\rMSA|{code}|{control}\r"
    return START + text.encode() + END


async def _capture(ctx: Context) -> Capture:
    parts = urlsplit(ctx.target)
    if parts.scheme != "mllp" or not parts.port:
        raise NotApplicable(f"the target {ctx.target!r} is not mllp://HOST:PORT (where to listen)")
    wanted = int(ctx.option("messages") or 40)
    first_wait = float(ctx.option("wait") or 60)
    idle = float(ctx.option("idle") or 15)
    capture = Capture()
    distinct: list[str] = []
    last = anyio.Event()
    last_at = [0.0]
    connections = [0]

    async def handle(stream: anyio.abc.SocketStream) -> None:
        connections[0] += 1
        number = connections[0]
        buffer = b""
        async with stream:
            while True:
                try:
                    buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                while END in buffer:
                    raw, buffer = buffer.split(END, 1)
                    start = raw.find(START)
                    if start != 0:
                        capture.stray_bytes.append(raw[: max(start, 0)] if start > 0 else raw)
                    text = raw[start + 1 :].decode("utf-8", "replace") if start >= 0 else ""
                    last_at[0] = time.monotonic()
                    control = control_id(text)
                    if control not in distinct:
                        distinct.append(control)
                    position = distinct.index(control) + 1
                    code: str | None = "AA"
                    if position == WITHHELD_ACK and capture.withheld_control is None:
                        capture.withheld_control, code = control, None
                    elif position == ERROR_ACK and capture.error_control is None:
                        capture.error_control, code = control, "AE"
                    capture.frames.append(Received(START + raw + END, text, number, code, last_at[0]))
                    if code is not None:
                        await stream.send(_ack(text, code))
                    if len(distinct) >= wanted:
                        last.set()

    listener = await anyio.create_tcp_listener(local_host=parts.hostname or "127.0.0.1", local_port=parts.port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        started = time.monotonic()
        while not last.is_set():
            now = time.monotonic()
            if not capture.frames and now - started > first_wait:
                break
            if capture.frames and now - last_at[0] > idle:
                break
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    if not capture.frames:
        raise NotApplicable(f"no message arrived at {ctx.target} within {first_wait:.0f} s")
    return capture


async def captured(ctx: Context) -> Capture:
    """The capture (listening once per run); the frames are attached as the check's exchanges."""
    found = await ctx.shared("capture", _capture)
    for frame in found.frames[:12]:
        ctx.exchanges.append(
            Exchange(
                "MLLP",
                ctx.target,
                {},
                frame.text.replace("\r", "\n"),
                None,
                {},
                f"ACK {frame.ack or '(withheld)'}",
                0.0,
                f"connection {frame.connection}",
            )
        )
    ctx.note(f"{len(found.frames)} frames over {len({f.connection for f in found.frames})} connection(s)")
    return found


def _messages(capture: Capture) -> list[str]:
    return [f.text for f in capture.frames]


@check("src-hl7.framing")
async def framing(ctx: Context) -> str:
    capture = await captured(ctx)
    if capture.stray_bytes:
        first = capture.stray_bytes[0][:40]
        raise Failed(f"{len(capture.stray_bytes)} byte run(s) outside <VT>…<FS><CR> frames, e.g. {first!r}")
    return f"{len(capture.frames)} frames well formed"


@check("src-hl7.segments")
async def segment_separator(ctx: Context) -> str:
    messages = _messages(await captured(ctx))
    bad = [control_id(m) or m[:30] for m in messages if "\n" in m or not m.startswith("MSH|")]
    require(not bad, f"{len(bad)} messages use LF or do not start with MSH: {bad[:5]}")
    return f"{len(messages)} messages"


@check("src-hl7.msh")
async def msh(ctx: Context) -> str:
    problems = []
    for message in _messages(await captured(ctx)):
        fields = message.split("\r", 1)[0].split("|")
        where = control_id(message) or message[:30]
        if len(fields) < 12:
            problems.append(f"{where}: MSH has {len(fields)} fields")
            continue
        if fields[1] != "^~\\&":
            problems.append(f"{where}: MSH-2 is {fields[1]!r}")
        if not fields[3]:
            problems.append(f"{where}: MSH-4 sending facility empty")
        if "^" not in fields[8]:
            problems.append(f"{where}: MSH-9 {fields[8]!r} is not code^event")
        if not fields[9]:
            problems.append(f"{where}: MSH-10 control id empty")
        if fields[10][:1] not in ("P", "T", "D"):
            problems.append(f"{where}: MSH-11 processing id {fields[10]!r}")
        if not fields[11].startswith("2."):
            problems.append(f"{where}: MSH-12 version {fields[11]!r}")
    require(not problems, f"{len(problems)} MSH problems: " + "; ".join(problems[:8]))
    return "every MSH complete"


@check("src-hl7.control-ids")
async def control_ids(ctx: Context) -> str:
    seen: dict[str, str] = {}
    clashes = []
    for message in _messages(await captured(ctx)):
        control = control_id(message)
        if control in seen and seen[control] != message:
            clashes.append(control)
        seen.setdefault(control, message)
    require(not clashes, f"control ids reused for different messages: {clashes[:5]}")
    return f"{len(seen)} distinct control ids"


@check("src-hl7.message-types")
async def message_types(ctx: Context) -> str:
    types = [message_type(m) for m in _messages(await captured(ctx))]
    unknown = sorted({t for t in types if t not in CONSUMED})
    require(not unknown, f"message types the adapter does not consume: {unknown}")
    return f"types: {', '.join(sorted(set(types)))}"


def _pid_problems(message: str) -> list[str]:
    where = control_id(message)
    found = [s for s in segments(message) if s[0] == "PID"]
    if not found:
        return [f"{where}: no PID segment"]
    pid = found[0] + [""] * 40
    problems = []
    identifiers = [r for r in pid[3].split("~") if r]
    if not any(len(r.split("^")) >= 5 and r.split("^")[4] == "MR" for r in identifiers):
        problems.append(f"{where}: PID-3 has no MR identifier with assigning authority")
    if not pid[5] or "^" not in pid[5]:
        problems.append(f"{where}: PID-5 name missing or not family^given")
    for rep in identifiers:
        parts = rep.split("^") + [""] * 5
        if parts[4] == "NH" and not is_valid(parts[0]):
            problems.append(f"{where}: NHS number {parts[0]!r} fails the check digit")
    return problems


@check("src-hl7.pid")
async def pid(ctx: Context) -> str:
    messages = [m for m in _messages(await captured(ctx)) if message_type(m).split("^")[0] in ("ADT", "ORU", "REF")]
    problems = [p for m in messages for p in _pid_problems(m)]
    require(not problems, f"{len(problems)} PID problems: " + "; ".join(problems[:8]))
    return f"{len(messages)} messages with a complete PID"


@check("src-hl7.required-segments")
async def required_segments(ctx: Context) -> str:
    needed = {
        "ADT^A01": ("PV1",),
        "ADT^A02": ("PV1",),
        "ADT^A03": ("PV1",),
        "ADT^A04": ("PV1",),
        "ORU^R01": ("OBR", "OBX"),
        "ADT^A40": ("MRG",),
        "REF^I12": ("RF1",),
    }
    problems = []
    for message in _messages(await captured(ctx)):
        names = {s[0] for s in segments(message)}
        missing = [n for n in needed.get(message_type(message), ()) if n not in names]
        if missing:
            problems.append(f"{control_id(message)} ({message_type(message)}) lacks {', '.join(missing)}")
    require(not problems, f"{len(problems)} messages lack segments: " + "; ".join(problems[:8]))
    return "every event carries its segments"


@check("src-hl7.resend-without-ack")
async def resend(ctx: Context) -> str:
    capture = await captured(ctx)
    if capture.withheld_control is None:
        raise NotApplicable("fewer than two messages arrived; the probe could not run")
    copies = [f for f in capture.frames if control_id(f.text) == capture.withheld_control]
    require(len(copies) >= 2, f"message {capture.withheld_control} was not resent after its ACK was withheld")
    require(copies[0].text == copies[1].text, "the resent message differs from the original")
    return f"{capture.withheld_control} resent {len(copies) - 1} time(s) after the ACK was withheld"


@check("src-hl7.move-on-after-ae")
async def move_on(ctx: Context) -> str:
    capture = await captured(ctx)
    if capture.error_control is None:
        raise NotApplicable("fewer than four messages arrived; the probe could not run")
    copies = [f for f in capture.frames if control_id(f.text) == capture.error_control]
    require(len(copies) == 1, f"message {capture.error_control} was sent {len(copies)} times after an AE")
    later = [f for f in capture.frames if f.at > copies[0].at]
    require(later, "nothing was sent after the AE (the sender stopped)")
    return f"{capture.error_control} got AE and was not resent; {len(later)} later frames"


@check("src-hl7.encoding")
async def encoding(ctx: Context) -> str:
    capture = await captured(ctx)
    problems = []
    for frame in capture.frames:
        try:
            frame.raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{control_id(frame.text)} is not UTF-8")
        fields = frame.text.split("\r", 1)[0].split("|") + [""] * 20
        if not fields[17]:
            problems.append(f"{control_id(frame.text)} has no MSH-18")
    require(not problems, "; ".join(problems[:8]))
    return "UTF-8 with MSH-18"
