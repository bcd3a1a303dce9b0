"""Opaque page tokens: the query, the logical time ``t`` of the first page, the offset and keyset cursor, signed.

The signature (HMAC-SHA256 with the app's page key) stops a client from editing ``t`` to read a state it was
never shown; replicas behind one load balancer must share the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from bcconnect.errors import InvalidRequest

_SIG_BYTES = 16


@dataclass(frozen=True, slots=True)
class PageState:
    """Where a next page continues: which query (kind, target, params), at which ``t``, from which offset."""

    kind: str
    target: str
    params: tuple[tuple[str, str], ...]
    t: int
    offset: int
    #: keyset cursor of the view (where the next page starts), when the order has one
    after: str | None = None


def encode_page(state: PageState, key: bytes) -> str:
    """An opaque, URL-safe token for ``state``."""
    payload = orjson.dumps(
        [state.kind, state.target, [list(p) for p in state.params], state.t, state.offset, state.after]
    )
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(signature + payload).decode().rstrip("=")


def decode_page(token: str, key: bytes) -> PageState:
    """The state in ``token``; InvalidRequest if it is malformed or not signed with ``key``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("_page_token is not a page token from this server") from exc
    signature, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
    if not hmac.compare_digest(signature, expected):
        raise InvalidRequest("_page_token is not a page token from this server (or the server restarted)")
    try:
        kind, target, params, t, offset, after = orjson.loads(payload)
        pairs = tuple((str(k), str(v)) for k, v in params)
        return PageState(str(kind), str(target), pairs, int(t), int(offset), None if after is None else str(after))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise InvalidRequest("_page_token is malformed") from exc
