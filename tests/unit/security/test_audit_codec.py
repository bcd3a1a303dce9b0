"""The audit trail's stored form: each event packed from a copy of one primed compressor."""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor

from bcconnect.security._audit_codec import CURRENT_FORMAT, FORMATS, pack, unpack


def fresh_pack(body: bytes) -> bytes:
    """What a compressor made for this one event stores (the form before the primed copy)."""
    packer = zlib.compressobj(level=6, wbits=-15, zdict=FORMATS[CURRENT_FORMAT])
    return bytes([CURRENT_FORMAT]) + packer.compress(body) + packer.flush()


EVENTS = [
    b'{"resourceType":"AuditEvent","id":"a","outcome":"0"}',
    b'{"resourceType":"AuditEvent","id":"b","outcome":"4","entity":[{"what":{"reference":"Patient/p1"}}]}',
    b"{}",
]


def test_each_event_is_packed_as_if_by_its_own_compressor() -> None:
    """Packing one event leaves nothing behind for the next: every result equals a fresh compressor's (which
    fails if the primed compressor itself were written to instead of a copy of it), and unpacks exactly."""
    for _ in range(3):
        for body in EVENTS:
            assert pack(body) == fresh_pack(body)
            assert unpack(pack(body)) == body


def test_threads_pack_at_once() -> None:
    """The audit writer's worker threads pack concurrently: every event still unpacks to itself."""
    bodies = [b'{"resourceType":"AuditEvent","id":"%d"}' % i for i in range(400)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        packed = list(pool.map(pack, bodies))
    assert [unpack(p) for p in packed] == bodies
    assert packed == [fresh_pack(b) for b in bodies]
