"""The project's adapters (``adapters/<trust>/adapter.toml``) pointed at a running sandbox world, as the demo
deploys them: tests use the demo's own code, so what they exercise is what a user runs."""

from __future__ import annotations

from pathlib import Path

from bcconnect.cli.demo_cmd import demo_adapters
from bcconnect.config import AdapterConfig
from bcconnect_sandbox import World

PROJECT_ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def world_adapters(world: World, *, hl7_drop_dir: Path) -> tuple[list[AdapterConfig], dict[str, str]]:
    """Adapter configurations for the sandboxes of ``world`` (settings from the project's files), and the
    secrets the files name."""
    return demo_adapters(world, adapters_dir=PROJECT_ADAPTERS, hl7_drop_dir=hl7_drop_dir)
