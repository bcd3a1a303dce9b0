"""``bcconnect demo``: the four simulated trusts → adapters → merged view → FHIR endpoint, on loopback.

The demo writes what it runs with into its data directory — ``bcconnect.toml``, ``adapters/<name>/adapter.toml``,
``demo.env`` (the sandbox credentials, as the environment variables the adapter files name) and the sandbox's
``ground_truth.csv`` — so every other command can be pointed at a running demo with
``--config <data-dir>/bcconnect.toml``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio
import orjson

from bcconnect.cli.common import SubParsers, settings_from
from bcconnect.cli.ingest_cmd import sync_progress
from bcconnect.cli.progress import Bars
from bcconnect.cli.serve_cmd import listen, serve_api
from bcconnect.config import (
    AdapterConfig,
    FetchSettings,
    Hl7Settings,
    SourceAuthSettings,
    SourceAuthType,
    SourceKind,
    load_settings,
)
from bcconnect.errors import UsageError
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM
from bcconnect.fhir.constants import ODS_ORGANIZATION_SYSTEM as ODS
from bcconnect.ingest import SyncReport, sync_adapters
from bcconnect.security import ensure_local_issuer
from bcconnect.store import Store, iter_current, open_store
from bcconnect_sandbox import SandboxSettings, World, running_sandboxes

#: mapping set and adapter kind of each simulated trust
DEMO_TRUSTS: dict[str, tuple[SourceKind, str]] = {
    "RL4": (SourceKind.FHIR_API, "rl4-fhir"),
    "RXK": (SourceKind.FHIR_API, "rxk-fhir"),
    "RNA": (SourceKind.JSON_API, "rna-json"),
    "RBK": (SourceKind.HL7V2, "rbk-hl7v2"),
}
DEMO_SCOPES = "user/*.rs"


def find_mappings_dir() -> Path:
    """The mapping sets shipped with bcconnect: ``./mappings`` or the project folder's."""
    candidates = [Path.cwd() / "mappings", Path(__file__).resolve().parents[3] / "mappings"]
    for candidate in candidates:
        if (candidate / "rl4-fhir").is_dir():
            return candidate
    raise UsageError("cannot find the mapping sets (a 'mappings' folder); run the demo from the project folder")


def world_adapters(world: World, *, hl7_drop_dir: Path) -> tuple[list[AdapterConfig], dict[str, str]]:
    """Adapter configurations for the sandboxes of ``world``, and the secrets they name."""
    configs: list[AdapterConfig] = []
    environ: dict[str, str] = {}
    for trust in world.settings.trusts:
        kind, mapping_set = DEMO_TRUSTS[trust]
        name = trust.lower()
        auth = SourceAuthSettings()
        base_url: str | None = None
        if kind is SourceKind.FHIR_API:
            credentials = world.credentials(trust)
            secret_env = f"BCCONNECT_{trust}_CLIENT_SECRET"
            environ[secret_env] = credentials.client_secret or ""
            auth = SourceAuthSettings(
                type=SourceAuthType.OAUTH2_CLIENT_CREDENTIALS,
                client_id=credentials.client_id,
                client_secret_env=secret_env,
            )
            base_url = world.base_url(trust)
        elif kind is SourceKind.JSON_API:
            key_env = f"BCCONNECT_{trust}_API_KEY"
            environ[key_env] = world.credentials(trust).api_key or ""
            auth = SourceAuthSettings(type=SourceAuthType.API_KEY, api_key_env=key_env)
            base_url = world.base_url(trust)
        configs.append(
            AdapterConfig(
                name=name,
                ods_code=trust,
                kind=kind,
                mapping_set=mapping_set,
                base_url=base_url,
                auth=auth,
                fetch=FetchSettings(page_size=200, concurrency=2 if trust == "RXK" else 4),
                hl7v2=Hl7Settings(mode="file", drop_dir=str(hl7_drop_dir)),
                schedule_seconds=60,
            )
        )
    return configs, environ


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def adapter_toml(config: AdapterConfig) -> str:
    """The ``adapter.toml`` text for ``config`` (secrets appear only as environment variable names)."""
    lines = [
        f"name = {_toml_value(config.name)}",
        f"ods_code = {_toml_value(config.ods_code)}",
        f"kind = {_toml_value(config.kind.value)}",
        f"mapping_set = {_toml_value(config.mapping_set)}",
        f"schedule_seconds = {config.schedule_seconds!r}",
    ]
    if config.base_url:
        lines.append(f"base_url = {_toml_value(config.base_url)}")
    auth = config.auth
    lines += ["", "[auth]", f"type = {_toml_value(auth.type.value)}"]
    for key in ("client_id", "client_secret_env", "api_key_env"):
        value = getattr(auth, key)
        if value:
            lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", "[fetch]", f"page_size = {config.fetch.page_size}", f"concurrency = {config.fetch.concurrency}"]
    if config.kind is SourceKind.HL7V2:
        lines += ["", "[hl7v2]", f"mode = {_toml_value(config.hl7v2.mode)}"]
        lines.append(f"drop_dir = {_toml_value(config.hl7v2.drop_dir)}")
    return "\n".join(lines) + "\n"


def write_demo_config(data_dir: Path, *, port: int, configs: Sequence[AdapterConfig], environ: dict[str, str]) -> Path:
    """Write ``bcconnect.toml``, the adapter files and ``demo.env`` into ``data_dir``; returns the config path."""
    issuer = ensure_local_issuer(data_dir)
    for config in configs:
        folder = data_dir / "adapters" / config.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter.toml").write_text(adapter_toml(config), encoding="utf-8")
    env_lines = [f"export {name}={value}" for name, value in sorted(environ.items())]
    env_file = data_dir / "demo.env"
    env_file.write_text("\n".join(env_lines) + "\n", encoding="utf-8")
    env_file.chmod(0o600)
    config_path = data_dir / "bcconnect.toml"
    config_path.write_text(
        "\n".join(
            [
                "# written by `bcconnect demo`",
                "[store]",
                'url = "sqlite:///bcconnect.db"',
                "",
                "[api]",
                'host = "127.0.0.1"',
                f"port = {port}",
                "",
                "[auth]",
                'mode = "jwt"',
                f"issuers = [{{ issuer = {_toml_value(issuer.issuer)}, audience = {_toml_value(issuer.audience)},"
                f" jwks_file = {_toml_value(issuer.jwks_path)} }}]",
                f"local_signing_key_file = {_toml_value(issuer.key_path)}",
                "",
                "[paths]",
                'adapters_dir = "adapters"',
                f"mappings_dir = {_toml_value(find_mappings_dir())}",
                'data_dir = "."',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config_path


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="sandboxes → sync → merged view → FHIR endpoint, on loopback")
    p.add_argument("--persons", type=int, default=200, help="synthetic people to generate (default 200)")
    p.add_argument("--port", type=int, default=8080, help="FHIR endpoint port (default 8080)")
    p.add_argument("--data-dir", default="bcconnect-data/demo", help="where the demo keeps its files")
    p.add_argument("--seed", type=int, default=1, help="population seed (same seed, same people)")
    p.add_argument("--no-serve", action="store_true", help="sync, print the summary and exit (for scripts)")
    p.set_defaults(handler=_demo)


def _print_sync(reports: Sequence[SyncReport]) -> None:
    for r in reports:
        state = "ok" if r.ok else f"FAILED: {r.error}"
        print(
            f"  {r.adapter}: fetched {r.fetched} = new {r.new} + changed {r.changed} + unchanged {r.unchanged}"
            f" + quarantined {r.quarantined} — {state}"
        )


def _demo(args: argparse.Namespace) -> int:
    if not 10 <= args.persons <= 1_300_000:
        raise UsageError(f"--persons must be between 10 and 1300000, got {args.persons}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be a TCP port, got {args.port}")
    settings_from(args)  # logging set-up; the demo writes its own configuration below
    # take the port before generating or syncing anything: a busy port is one sentence now, not a traceback later
    listening = [] if args.no_serve else [listen("127.0.0.1", args.port)]
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "bcconnect.db").unlink(missing_ok=True)  # a demo starts from an empty store
    for suffix in ("-wal", "-shm"):
        (data_dir / f"bcconnect.db{suffix}").unlink(missing_ok=True)
    drop_dir = data_dir / "hl7-drop" / "rbk"
    drop_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> int:
        started = time.perf_counter()
        sandbox = SandboxSettings(persons=args.persons, seed=args.seed)
        async with running_sandboxes(sandbox, hl7_drop_dir=drop_dir) as world:
            configs, environ = world_adapters(world, hl7_drop_dir=drop_dir)
            config_path = write_demo_config(data_dir, port=args.port, configs=configs, environ=environ)
            world.write_ground_truth(data_dir / "ground_truth.csv")
            await world.deliver_hl7()
            settings = load_settings(config_path, required=True)
            print(f"bcconnect demo: {args.persons} synthetic people across four trusts (seed {args.seed})")
            async with open_store(settings.store_url()) as store:
                with Bars("syncing") as bars:
                    reports = await sync_adapters(
                        configs, settings=settings, store=store, environ=environ, progress=sync_progress(bars)
                    )
                _print_sync(reports)
                if args.no_serve:
                    return 0 if all(r.ok for r in reports) else 1

                async def announce() -> None:
                    issuer = ensure_local_issuer(data_dir)
                    token = issuer.issue(scopes=DEMO_SCOPES, user="555123456789", org="RL4", role="R8000")
                    base = f"http://127.0.0.1:{args.port}/fhir"
                    nhs = await _an_nhs_number(store)
                    print(f"\nFHIR endpoint: {base}   (ready in {time.perf_counter() - started:.1f}s)")
                    print(f"web pages:     http://127.0.0.1:{args.port}/app/   (sign in with the token below)")
                    print(f"configuration: {config_path}")
                    print("\nTry:")
                    print(f'  curl -H "Authorization: Bearer $TOKEN" {base}/metadata')
                    print(
                        f'  curl -H "Authorization: Bearer $TOKEN"'
                        f' "{base}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"'
                    )
                    print("\nPress Ctrl-C to stop. A bearer token for the requests above (valid 1 hour):")
                    print(f"TOKEN={token}", flush=True)

                await serve_api(settings, store=store, on_ready=announce, listening=listening)
        return 0

    try:
        return anyio.run(go)
    except KeyboardInterrupt:
        print("\nbcconnect demo: stopped")
        return 0
    finally:
        for sock in listening:
            sock.close()


async def _an_nhs_number(store: Store) -> str:
    """The verified NHS number held by the most trusts: the best first lookup to show the merged view."""
    trusts_by_number: dict[str, set[str]] = {}
    after = ""
    while True:
        batch = await store.read(partial(iter_current, resource_type="Patient", after_id=after))
        if not batch:
            break
        after = batch[-1].id
        for stored in batch:
            if stored.body is None:
                continue
            patient = orjson.loads(stored.body)
            tags = {t.get("code") for t in patient.get("meta", {}).get("tag", []) if t.get("system") == ODS}
            for identifier in patient.get("identifier", []):
                if identifier.get("system") == NHS_NUMBER_SYSTEM and identifier.get("value"):
                    trusts_by_number.setdefault(identifier["value"], set()).update(t for t in tags if t)
    if not trusts_by_number:
        return "9990000018"
    return max(sorted(trusts_by_number), key=lambda number: len(trusts_by_number[number]))
