"""RNA's vendor JSON API: an API key and a change feed with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
from typing import Final

from bcconnect_sandbox.asgi import FaultyWire, Receive, Request, Response, Scope, Send, json_response, read_request
from bcconnect_sandbox.dialects.rna import ENTITY, Json, to_rna, uk_datetime
from bcconnect_sandbox.faults import FaultPlan, HttpFault, MessageFault
from bcconnect_sandbox.fhir_server import take_page
from bcconnect_sandbox.settings import SandboxSettings
from bcconnect_sandbox.state import TrustState, Version

CHANGES_PATH: Final = "/api/v2/changes"


def encode_cursor(tick: int) -> str:
    """The opaque cursor that resumes the feed at ``tick``.

    >>> decode_cursor(encode_cursor(1234))
    1234
    """
    return base64.urlsafe_b64encode(f"rna1:{tick}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The tick inside a cursor; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a cursor: {cursor!r}") from exc
    tag, _, tick = text.partition(":")
    if tag != "rna1" or not tick.isdigit():
        raise ValueError(f"not a cursor: {cursor!r}")
    return int(tick)


class RnaApp:
    """ASGI app of RNA: ``GET /api/v2/changes?cursor=&limit=`` behind ``X-API-Key``."""

    def __init__(self, settings: SandboxSettings, state: TrustState, wire: FaultyWire, plan: FaultPlan) -> None:
        self.settings = settings
        self.state = state
        self.wire = wire
        self.plan = plan
        self.api_key = settings.credentials("RNA").api_key
        self.base_url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        if request.path != CHANGES_PATH or request.method != "GET":
            await self.wire.send(send, request, json_response(404, {"error": "not_found"}), None)
            return
        if request.headers.get("x-api-key") != self.api_key:
            await self.wire.send(send, request, json_response(401, {"error": "unauthorised"}), None)
            return
        fault = await self.wire.before(receive)
        replaced = self.wire.error_response(fault) if fault is not None else None
        response = replaced or self.changes(request, duplicate=fault is HttpFault.DUPLICATE)
        await self.wire.send(send, request, response, fault)

    def changes(self, request: Request, *, duplicate: bool = False) -> Response:
        """One page of the change feed."""
        cursor = request.param("cursor")
        raw_limit = request.param("limit") or str(self.settings.default_page_size)
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            return json_response(400, {"error": "bad_limit", "detail": raw_limit})
        try:
            start = decode_cursor(cursor) if cursor else 0
        except ValueError as exc:
            return json_response(400, {"error": "bad_cursor", "detail": str(exc)})
        versions = (v for v in self.state.history(None, start) if not v.kind or v.kind in ENTITY)
        page, next_tick = take_page(versions, min(int(raw_limit), self.settings.max_page_size), None)
        changes = [self._change(v) for v in page]
        self._disorder(changes)
        if duplicate and changes:
            changes.append(changes[0])
        resume = next_tick if next_tick is not None else self.state.end_tick + 1
        if page and next_tick is None:
            resume = page[-1].tick + 1
        return json_response(
            200, {"changes": changes, "next_cursor": encode_cursor(resume), "has_more": next_tick is not None}
        )

    def _change(self, v: Version) -> Json:
        change: Json = {
            "seq": v.tick,
            "entity": ENTITY[v.kind],
            "id": v.id,
            "op": "delete" if v.record is None else "upsert",
            "modified": uk_datetime(self.state.instant(v.tick)),
        }
        if v.record is not None:
            change["data"] = to_rna(v.record)
        return change

    def _disorder(self, changes: list[Json]) -> None:
        """Out-of-order delivery: swap a change with its successor (the ``seq`` values show it)."""
        k = 0
        while k < len(changes) - 1:
            if self.plan.next_message() is MessageFault.OUT_OF_ORDER:
                changes[k], changes[k + 1] = changes[k + 1], changes[k]
                self.plan.count("out_of_order")
                k += 2
            else:
                k += 1
