r"""HL7 v2 (ER7) messages: parse, address values by path, and acknowledge.

A leaf package: it knows nothing of FHIR, adapters or storage, so mapping and the adapters can both use it.

>>> from bcconnect.hl7v2 import AckCode, build_ack, parse_message
>>> msg = parse_message("MSH|^~\\&|PAS|RBK|||20261122||ADT^A01|9|P|2.4\rPID|1||A1^^^RBK^MR~B2^^^NHS^NH")
>>> msg.get("PID-3[2].1"), msg.get_all("PID-3.5")
('B2', ['MR', 'NH'])
"""

from __future__ import annotations

from bcconnect.hl7v2._ack import AckCode, build_ack
from bcconnect.hl7v2._encoding import DEFAULT_ENCODING, EncodingCharacters, escape, unescape
from bcconnect.hl7v2._message import Component, Field, Message, Repetition, Segment
from bcconnect.hl7v2._parser import parse_message
from bcconnect.hl7v2._path import FieldPath

__all__ = [
    "DEFAULT_ENCODING",
    "AckCode",
    "Component",
    "EncodingCharacters",
    "Field",
    "FieldPath",
    "Message",
    "Repetition",
    "Segment",
    "build_ack",
    "escape",
    "parse_message",
    "unescape",
]
