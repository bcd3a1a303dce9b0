"""RBK's HL7 v2 sender (placeholder)."""

from __future__ import annotations

from pathlib import Path

from bcconnect.sandbox.faults import FaultPlan
from bcconnect.sandbox.settings import SandboxSettings
from bcconnect.sandbox.state import TrustState


class Hl7Sender:
    """Sends RBK's messages."""

    def __init__(self, settings: SandboxSettings, state: TrustState, plan: FaultPlan, *,
                 target: tuple[str, int] | None, drop_dir: Path | None) -> None:
        self.settings, self.state, self.plan, self.target, self.drop_dir = settings, state, plan, target, drop_dir

    async def deliver(self, *, limit: int | None = None) -> dict[str, int]:
        """Send pending messages."""
        return {}
