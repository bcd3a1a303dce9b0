"""The ER7 parser: segments, delimiters, repetitions, components, escapes, and its errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bcconnect.errors import ParseError
from bcconnect.hl7v2 import AckCode, FieldPath, build_ack, escape, parse_message, unescape

ADT = "\r".join(
    [
        r"MSH|^~\&|PAS|RBK|BCC|BCICS|20261122101500||ADT^A01^ADT_A01|MSG00042|P|2.4",
        "EVN|A01|20261122101500",
        "PID|1||RBK123^^^RBK^MR~9434765919^^^NHS^NH||Smith^Anne^^^Mrs||19700101|F|||1 High St^^Dudley^^DY1 1AA",
        r"NTE|1||Ward \F\ bay 3 \T\ side room\.br\second line \S\ \R\ \E\ ",
        "OBX|1|NM|GLU^Glucose||5.4|mmol/L",
        "OBX|2|NM|HB^Haemoglobin||130|g/L",
        "OBX|3|ST|COMMENT^Note||A&B sub^second",
    ]
)


def test_reads_msh_accessors() -> None:
    """The MSH header gives sender, control id, message type (code^event, no structure) and version."""
    msg = parse_message(ADT)
    assert msg.sending_application == "PAS"
    assert msg.sending_facility == "RBK"
    assert msg.receiving_facility == "BCICS"
    assert msg.control_id == "MSG00042"
    assert msg.message_type == "ADT^A01"
    assert msg.trigger_event == "A01"
    assert msg.version == "2.4"
    assert msg.timestamp == "20261122101500"
    assert msg.get("MSH-1") == "|"
    assert msg.get("MSH-2") == "^~\\&"


def test_repeated_fields_by_index_and_all() -> None:
    """PID-3 repeats: [n] picks a repetition, get_all returns every one in order."""
    msg = parse_message(ADT)
    assert msg.get("PID-3[1].1") == "RBK123"
    assert msg.get("PID-3[2].1") == "9434765919"
    assert msg.get("PID-3.1") == "RBK123"  # no [n]: the first repetition
    assert msg.get_all("PID-3.5") == ["MR", "NH"]
    assert msg.get_all("PID-3") == ["RBK123^^^RBK^MR", "9434765919^^^NHS^NH"]
    assert msg.get("PID-3[3].1") is None


def test_components_and_empty_components() -> None:
    """Empty components are None via get; a field with parts comes back as ER7 text."""
    msg = parse_message(ADT)
    assert msg.get("PID-5.1") == "Smith"
    assert msg.get("PID-5.3") is None  # empty component
    assert msg.get("PID-5.9") is None  # past the end
    assert msg.get("PID-5") == "Smith^Anne^^^Mrs"
    assert msg.get("PID-11.5") == "DY1 1AA"
    assert msg.get("PID-2") is None  # empty field
    assert msg.get("PID-40") is None  # absent field
    assert msg.get_all("PID-40") == []


def test_subcomponents() -> None:
    """& splits a component into sub-components."""
    msg = parse_message(ADT)
    assert msg.get("OBX[3]-5.1.1") == "A"
    assert msg.get("OBX[3]-5.1.2") == "B sub"
    assert msg.get("OBX[3]-5.1") == "A&B sub"
    assert msg.get("OBX[3]-5.2") == "second"


def test_escapes_are_decoded() -> None:
    """\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ and \\.br\\ become the characters they protect."""
    msg = parse_message(ADT)
    assert msg.get("NTE-3") == "Ward | bay 3 & side room\nsecond line ^ ~ \\ "


def test_hex_escape_and_unknown_escape_kept() -> None:
    """\\Xhh\\ spells bytes (UTF-8); an unknown escape is kept verbatim, never dropped."""
    msg = parse_message("MSH|^~\\&|A|B|||||ADT^A08|1|P|2.4\rNTE|1||caf\\XC3A9\\ \\Q\\")
    assert msg.get("NTE-3") == "café \\Q\\"


def test_repeating_segments_in_order() -> None:
    """segments("OBX") keeps message order; OBX[2]-5 addresses the second one."""
    msg = parse_message(ADT)
    assert [s.get("3.1") for s in msg.segments("OBX")] == ["GLU", "HB", "COMMENT"]
    assert msg.get("OBX[2]-5") == "130"
    assert msg.get("OBX[4]-5") is None
    assert msg.segments("ZZZ") == []


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\r"])
def test_line_separators_tolerated(separator: str) -> None:
    """\\r is standard; \\n and \\r\\n (files edited elsewhere) parse the same."""
    msg = parse_message(ADT.replace("\r", separator) + separator)
    assert len(msg.segments("OBX")) == 3
    assert msg.get("PID-3[2].1") == "9434765919"


def test_bytes_and_mllp_framing() -> None:
    """Bytes are decoded (UTF-8, else cp1252); stray MLLP framing bytes are ignored."""
    framed = b"\x0b" + ADT.replace("Anne", "Ren\xe9e").encode("latin-1") + b"\x1c\r"
    msg = parse_message(framed)
    assert msg.get("PID-5.2") == "Renée"


def test_custom_encoding_characters() -> None:
    """Delimiters come from MSH-1/MSH-2, not from constants."""
    msg = parse_message("MSH#*!/$#A#B#####ADT*A04#7#P#2.4\rPID#1##X1*Y!X2*Z#")
    assert msg.message_type == "ADT^A04"
    assert msg.get_all("PID-3.1") == ["X1", "X2"]


def test_round_trip_to_er7() -> None:
    """to_er7 gives the same values back after re-parsing (escapes re-applied)."""
    msg = parse_message(ADT)
    again = parse_message(msg.to_er7())
    assert again.get("NTE-3") == msg.get("NTE-3")
    assert again.get_all("PID-3") == msg.get_all("PID-3")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty message"),
        ("PID|1||X\rMSH|^~\\&|A", "missing MSH"),
        ("MSH|^~\\&|A|B|||||ADT^A01|1|P|2.4\rEVN|A01\rPX|1|2", "segment 3 'PX|…': segment id must be three"),
        ("MSH|^~\\&|A|B|||||ADT^A01|1|P|2.4\rpid|1", "segment 2 'pid|…'"),
        ("MSH|^~\\&|A|B|||||ADT^A01||P|2.4", "MSH-10 (message control id) is empty"),
        ("MSH|^~\\&|A|B||||||1|P|2.4", "MSH-9 (message type) is empty"),
        ("MSH|^~|A|B|||||ADT^A01|1|P|2.4", "MSH-2 must hold 4 encoding characters"),
        ("MSH|^^\\&|A|B|||||ADT^A01|1|P|2.4", "must all differ"),
        ("MSH|^~\\&|A|B|||||ADT^A01|1|P\rMSH|^~\\&|A|B|||||ADT^A01|2|P", "a second MSH"),
    ],
)
def test_malformed_input_raises_parse_error(text: str, expected: str) -> None:
    """Each kind of malformed message is a ParseError whose message says what was wrong."""
    with pytest.raises(ParseError, match=re.escape(expected)):
        parse_message(text)


def test_parse_error_does_not_echo_field_contents() -> None:
    """The error names the segment, not its contents (which may identify a patient)."""
    with pytest.raises(ParseError) as info:
        parse_message("MSH|^~\\&|A|B|||||ADT^A01|1|P|2.4\rP-D|1||9434765919")
    assert "9434765919" not in str(info.value)


def test_field_path_errors_and_str() -> None:
    """Bad paths are ValueErrors naming the path; str() is the canonical spelling."""
    with pytest.raises(ValueError, match="'PID-0'"):
        FieldPath.parse("PID-0")
    assert str(FieldPath.parse("OBX[2]-5[1].2.3")) == "OBX[2]-5[1].2.3"
    with pytest.raises(ValueError, match="must name a segment"):
        parse_message(ADT).get("3.1")


@pytest.mark.parametrize("code", list(AckCode))
def test_build_ack(code: AckCode) -> None:
    """The ACK swaps sender and receiver, echoes the control id in MSA-2 and escapes the text."""
    msg = parse_message(ADT)
    ack_text = build_ack(msg, code, "bad | value", now=datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    assert ack_text.endswith("\r")
    ack = parse_message(ack_text)
    assert ack.message_type == "ACK^A01"
    assert ack.sending_application == "BCC"
    assert ack.sending_facility == "BCICS"
    assert ack.receiving_facility == "RBK"
    assert ack.timestamp == "20261122100000"
    assert ack.get("MSA-1") == code.value
    assert ack.get("MSA-2") == "MSG00042"
    assert ack.get("MSA-3") == "bad | value"
    assert ack.version == "2.4"


@given(st.text(alphabet=st.characters(blacklist_characters="\r", blacklist_categories=["Cs"])))
def test_escape_then_unescape_is_identity(text: str) -> None:
    """Any value (without carriage returns) survives escape → unescape unchanged."""
    assert unescape(escape(text)) == text


@given(st.lists(st.text(alphabet="ab|^~&\\ \n", max_size=8), min_size=1, max_size=4))
def test_values_survive_a_message_round_trip(values: list[str]) -> None:
    """Escaped values placed in a segment parse back to the same decoded values."""
    fields = "|".join(escape(v) for v in values)
    msg = parse_message(f"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.4\rNTE|{fields}")
    assert [msg.get(f"NTE-{i}") or "" for i in range(1, len(values) + 1)] == values
