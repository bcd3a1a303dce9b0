"""The demo deploys the project's adapter files: every setting comes from ``adapters/<trust>/adapter.toml``; only
the sandboxes' base URLs and the HL7 drop folder are the demo's, and the files it writes read back the same."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bcconnect.cli.demo_cmd import write_demo_config
from bcconnect.config import SourceKind, load_adapters
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from support.sandbox_world import PROJECT_ADAPTERS, world_adapters

pytestmark = pytest.mark.anyio


async def test_the_demo_changes_only_what_it_chose(tmp_path: Path) -> None:
    project = {c.name: c for c in load_adapters(PROJECT_ADAPTERS)}
    async with running_sandboxes(SandboxSettings(persons=10, seed=3), hl7_drop_dir=tmp_path / "drop") as world:
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        assert sorted(c.name for c in configs) == sorted(project)
        for config in configs:
            original = project[config.name]
            if config.kind is SourceKind.HL7V2:
                assert config.hl7v2.drop_dir == str(tmp_path / "drop")
                assert config == replace(original, hl7v2=replace(original.hl7v2, drop_dir=config.hl7v2.drop_dir))
            else:
                assert config.base_url == world.base_url(config.ods_code)
                assert config == replace(original, base_url=config.base_url)
        named = {c.auth.client_secret_env for c in configs} | {c.auth.api_key_env for c in configs}
        assert set(environ) == named - {None}

        write_demo_config(tmp_path / "demo", port=8080, configs=configs, environ=environ)
    written = load_adapters(tmp_path / "demo" / "adapters")
    assert [replace(c, source_file=None) for c in written] == [
        replace(c, source_file=None) for c in sorted(configs, key=lambda c: c.name)
    ]
    rl4 = (tmp_path / "demo" / "adapters" / "rl4" / "adapter.toml").read_text(encoding="utf-8")
    assert rl4.startswith("# The Royal Wolverhampton NHS Trust")  # the project's file, comments kept
