"""What can be tested of the container stack without pulling images: the entrypoint script, run for real, and
the compose file's wiring, loaded with the engine's own configuration loader."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from bcconnect.config import SourceKind, load_adapters, load_settings
from bcconnect_sandbox import SandboxSettings

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"


def _compose() -> dict[str, object]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _services() -> dict[str, dict[str, object]]:
    return _compose()["services"]  # type: ignore[index,return-value]


def _engine_environment() -> dict[str, str]:
    return {k: str(v) for k, v in _services()["engine"]["environment"].items()}  # type: ignore[union-attr]


def test_the_compose_configuration_loads_with_the_engine_loader() -> None:
    """The engine's file plus the compose environment is a valid configuration: PostgreSQL with the compose
    password, the API and metrics ports the compose file publishes."""
    settings = load_settings(DOCKER / "bcconnect.toml", environ=_engine_environment(), required=True)
    store = urlsplit(settings.store_url())
    postgres = _services()["postgres"]["environment"]  # type: ignore[index]
    assert store.scheme == "postgresql"
    assert store.hostname == "postgres"
    assert store.username == postgres["POSTGRES_USER"]  # type: ignore[index]
    assert store.password == postgres["POSTGRES_PASSWORD"]  # type: ignore[index]
    assert store.path == "/" + postgres["POSTGRES_DB"]  # type: ignore[index,operator]
    published = {str(p).rsplit(":", 1)[-1] for p in _services()["engine"]["ports"]}  # type: ignore[union-attr]
    assert {str(settings.api.port), str(settings.metrics.port)} <= published
    assert settings.api.host == "0.0.0.0"  # noqa: S104 - inside the container network, by design
    assert settings.auth.issuers[0].jwks_file == "/data/security/local-issuer-jwks.json"


def test_every_adapter_reaches_a_sandbox_service_with_its_credentials() -> None:
    """Each adapter's URL names a compose service serving that trust on that port; each secret it names is set
    in the engine's environment to what that sandbox expects; its mapping set exists."""
    services = _services()
    environment = _engine_environment()
    adapters = load_adapters(DOCKER / "adapters")
    assert {a.ods_code for a in adapters} == {"RL4", "RXK", "RNA", "RBK"}
    offsets = {"RL4": 0, "RXK": 1, "RNA": 2}
    for adapter in adapters:
        service = services[f"sandbox-{adapter.name}"]
        command = [str(part) for part in service["command"]]  # type: ignore[union-attr]
        assert command[command.index("--trust") + 1] == adapter.ods_code
        seed = int(command[command.index("--seed") + 1])
        expected = SandboxSettings(density=0, seed=seed).credentials(adapter.ods_code)
        assert (ROOT / "mappings" / adapter.mapping_set).is_dir(), adapter.mapping_set
        if adapter.kind is SourceKind.HL7V2:
            target = command[command.index("--hl7-target") + 1]
            assert target == f"engine:{adapter.hl7v2.listen_port}"
            assert adapter.hl7v2.mode == "mllp"
            assert adapter.hl7v2.listen_host == "0.0.0.0"  # noqa: S104 - the sandbox container connects in
            continue
        url = urlsplit(adapter.base_url or "")
        assert url.hostname == f"sandbox-{adapter.name}"
        port_base = int(command[command.index("--port-base") + 1])
        assert url.port == port_base + offsets[adapter.ods_code]
        assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104
        if adapter.auth.client_secret_env:
            assert environment[adapter.auth.client_secret_env] == expected.client_secret
        if adapter.auth.api_key_env:
            assert environment[adapter.auth.api_key_env] == expected.api_key


def test_the_dockerfile_runs_as_a_non_root_user_from_files_that_exist() -> None:
    """The image drops root, and everything it copies is in the repository."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    for source in re.findall(r"^COPY\s+(?!--from)(\S+)", text, re.MULTILINE):
        assert (ROOT / source).exists(), source
    assert os.access(DOCKER / "entrypoint.sh", os.X_OK)


def _entrypoint(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), *command],
        env={"PATH": path, "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_the_entrypoint_migrates_makes_the_demo_token_and_runs_bcconnect_with_the_config(tmp_path: Path) -> None:
    """Store migrated, local issuer and a demo token written, then ``bcconnect …`` runs with the configuration."""
    config = tmp_path / "bcconnect.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8")
    data = tmp_path / "data"
    result = _entrypoint(
        tmp_path, "bcconnect", "db", "status", BCCONNECT_CONFIG=str(config), BCCONNECT_DATA_DIR=str(data)
    )
    assert result.returncode == 0, result.stderr
    assert "pending" not in result.stdout.lower()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n?", (data / "demo-token.txt").read_text(encoding="utf-8"))
    assert (data / "security" / "local-issuer-jwks.json").is_file()
    assert not (data / ".db-upgrade.err").exists()


def test_the_entrypoint_runs_any_other_command_as_given(tmp_path: Path) -> None:
    """A command that is not ``bcconnect`` is executed unchanged (after the same preparation)."""
    config = tmp_path / "bcconnect.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8")
    result = _entrypoint(
        tmp_path,
        "echo",
        "hello",
        BCCONNECT_CONFIG=str(config),
        BCCONNECT_DATA_DIR=str(tmp_path / "d"),
        BCCONNECT_DEMO_TOKEN="0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"


@pytest.mark.slow
def test_the_entrypoint_gives_up_on_an_unreachable_store_in_one_line(tmp_path: Path) -> None:
    """Nothing listens where the store should be: after the wait, one line saying so, and a failing exit."""
    config = tmp_path / "bcconnect.toml"
    config.write_text('[store]\nurl = "sqlite:///x.db"\n', encoding="utf-8")
    result = _entrypoint(
        tmp_path,
        "bcconnect",
        "db",
        "status",
        BCCONNECT_CONFIG=str(config),
        BCCONNECT_DATA_DIR=str(tmp_path / "d"),
        BCCONNECT_WAIT_SECONDS="2",
        BCCONNECT_STORE_URL=f"postgresql://bcconnect@127.0.0.1:{free_port()}/nothing?connect_timeout=1",
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "did not become ready within 2s" in lines[0]
