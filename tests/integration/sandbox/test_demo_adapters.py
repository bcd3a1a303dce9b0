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


def _rehosted(url: str | None, there: str) -> str:
    """``url``'s path on the scheme, host and port of ``there``."""
    assert url is not None
    path = url.split("/", 3)[3] if url.count("/") >= 3 else ""
    return f"{there}/{path}" if path else there


async def test_the_demo_changes_only_what_it_chose(tmp_path: Path) -> None:
    project = {c.name: c for c in load_adapters(PROJECT_ADAPTERS)}
    async with running_sandboxes(
        SandboxSettings(density=0, persons=10, seed=3), hl7_drop_dir=tmp_path / "drop"
    ) as world:
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        assert sorted(c.name for c in configs) == sorted(project)
        for config in configs:
            original = project[config.name]
            if config.kind is SourceKind.HL7V2:
                assert config.hl7v2.drop_dir == str(tmp_path / "drop")
                assert config == replace(original, hl7v2=replace(original.hl7v2, drop_dir=config.hl7v2.drop_dir))
            else:  # the file's URLs (FHIR base path, token URL) on the sandbox's host and port, nothing else
                there = world.base_url(config.ods_code)
                assert config.base_url == _rehosted(original.base_url, there)
                token_url = _rehosted(original.auth.token_url, there) if original.auth.token_url else None
                assert config.auth.token_url == token_url
                assert config == replace(
                    original, base_url=config.base_url, auth=replace(original.auth, token_url=token_url)
                )
        named = {c.auth.client_secret_env for c in configs} | {c.auth.api_key_env for c in configs}
        assert set(environ) == named - {None}

        write_demo_config(tmp_path / "demo", port=8080, configs=configs, environ=environ)
    written = load_adapters(tmp_path / "demo" / "adapters")
    assert [replace(c, source_file=None) for c in written] == [
        replace(c, source_file=None) for c in sorted(configs, key=lambda c: c.name)
    ]
    rl4 = (tmp_path / "demo" / "adapters" / "rl4" / "adapter.toml").read_text(encoding="utf-8")
    assert rl4.startswith("# The Royal Wolverhampton NHS Trust")  # the project's file, comments kept
