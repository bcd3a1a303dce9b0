"""RNA's vendor JSON API (placeholder until the change feed lands)."""

from __future__ import annotations

from bcconnect.sandbox.asgi import FaultyWire, Receive, Scope, Send, json_response
from bcconnect.sandbox.faults import FaultPlan
from bcconnect.sandbox.settings import SandboxSettings
from bcconnect.sandbox.state import TrustState


class RnaApp:
    """ASGI app of RNA."""

    def __init__(self, settings: SandboxSettings, state: TrustState, wire: FaultyWire, plan: FaultPlan) -> None:
        self.settings, self.state, self.wire, self.plan = settings, state, wire, plan
        self.base_url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        from bcconnect.sandbox.asgi import read_request

        request = await read_request(scope, receive)
        await self.wire.send(send, request, json_response(501, {"error": "not yet"}), None)
