"""The project's adapters (``adapters/<trust>/adapter.toml``) pointed at a running sandbox world, as the demo
deploys them: tests use the demo's own code, so what they exercise is what a user runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bcconnect.cli.demo_cmd import demo_adapters
from bcconnect.config import AdapterConfig, PathSettings, Settings
from bcconnect.ingest import sync_adapters
from bcconnect.store import Store
from bcconnect_sandbox import NoiseSettings, SandboxSettings, World, running_sandboxes

PROJECT_ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"
PROJECT_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
#: identity noise off, for tests of what the view powers rather than of linkage (the patient index has its own)
NO_IDENTITY_NOISE = NoiseSettings(
    nhs_missing=0.0, nhs_unverified=0.0, typo=0.0, nickname=0.0, dob_swapped=0.0, moved_house=0.0, duplicate=0.0
)


def world_adapters(world: World, *, hl7_drop_dir: Path) -> tuple[list[AdapterConfig], dict[str, str]]:
    """Adapter configurations for the sandboxes of ``world`` (settings from the project's files), and the
    secrets the files name."""
    return demo_adapters(world, adapters_dir=PROJECT_ADAPTERS, hl7_drop_dir=hl7_drop_dir)


@asynccontextmanager
async def synced_world(settings: SandboxSettings, store: Store, tmp: Path) -> AsyncIterator[World]:
    """The four sandboxes of ``settings`` running and synced into ``store`` through the project's adapters and
    mappings (every dialect, HL7 delivered first); fails unless every sync is ok and nothing was quarantined."""
    async with running_sandboxes(settings, hl7_drop_dir=tmp / "drop") as world:
        await world.deliver_hl7()
        configs, environ = world_adapters(world, hl7_drop_dir=tmp / "drop")
        sync_settings = Settings(root=tmp, paths=PathSettings(mappings_dir=str(PROJECT_MAPPINGS)))
        reports = await sync_adapters(configs, settings=sync_settings, store=store, environ=environ)
        assert all(r.ok and r.quarantined == 0 for r in reports), [r.as_dict() for r in reports]
        yield world
