"""``bcconnect demo``: the four simulated trusts → adapters → merged view → FHIR endpoint, on loopback.

The demo deploys the project's own adapters (``adapters/<trust>/adapter.toml``): every setting comes from those
files; only what the demo chose is changed — the sandboxes' base URLs (free ports) and the HL7 drop folder. It
writes what it runs with into its data directory — ``bcconnect.toml``, ``adapters/<name>/adapter.toml`` (the
project's file, comments kept, with those values changed), ``demo.env`` (the sandbox credentials, as the
environment variables the adapter files name) and the sandbox's ``ground_truth.csv`` — so every other command can
be pointed at a running demo with ``--config <data-dir>/bcconnect.toml``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import anyio
import orjson
import tomlkit

from bcconnect.cli.common import SubParsers, require_sandbox, settings_from, until_stopped
from bcconnect.cli.ingest_cmd import sync_progress
from bcconnect.cli.progress import Bars
from bcconnect.cli.serve_cmd import listen, serve_api
from bcconnect.cohorts import Cohorts
from bcconnect.config import AdapterConfig, SourceKind, load_adapters, load_settings
from bcconnect.errors import UsageError
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM
from bcconnect.fhir.constants import ODS_ORGANIZATION_SYSTEM as ODS
from bcconnect.ingest import SyncReport, sync_adapters
from bcconnect.security import ensure_local_issuer
from bcconnect.store import Store, iter_current, open_store
from bcconnect.view import View

if TYPE_CHECKING:
    from bcconnect_sandbox import World

DEMO_SCOPES = "user/*.rs"


def find_project_dir(name: str) -> Path:
    """A folder shipped with the project (``mappings``, ``adapters``): in the current directory or the project's."""
    candidates = [Path.cwd() / name, Path(__file__).resolve().parents[3] / name]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise UsageError(f"cannot find the project's '{name}' folder; run the demo from the project folder")


def demo_adapters(
    world: World, *, adapters_dir: Path, hl7_drop_dir: Path
) -> tuple[list[AdapterConfig], dict[str, str]]:
    """The project's adapters pointed at the sandboxes of ``world``, and the secrets their files name."""
    configs: list[AdapterConfig] = []
    environ: dict[str, str] = {}
    for config in load_adapters(adapters_dir):
        if config.ods_code not in world.settings.trusts:
            continue
        if config.kind is SourceKind.HL7V2:
            configs.append(replace(config, hl7v2=replace(config.hl7v2, mode="file", drop_dir=str(hl7_drop_dir))))
            continue
        credentials = world.credentials(config.ods_code)
        for env_name, value in (
            (config.auth.client_secret_env, credentials.client_secret),
            (config.auth.api_key_env, credentials.api_key),
        ):
            if env_name and value:
                environ[env_name] = value
        # the file's URLs (FHIR base as published, token URL if named) on the host and port the sandbox chose
        there = world.base_url(config.ods_code)
        token_url = _rehosted(config.auth.token_url, there) if config.auth.token_url else None
        configs.append(
            replace(config, base_url=_rehosted(config.base_url, there), auth=replace(config.auth, token_url=token_url))
        )
    return configs, environ


def _rehosted(url: str | None, there: str) -> str:
    """``url`` with the scheme, host and port of ``there`` (its path, as the adapter file publishes it, kept).

    >>> _rehosted("http://127.0.0.1:8101/fhir/R4", "http://127.0.0.1:40123")
    'http://127.0.0.1:40123/fhir/R4'
    """
    target = urlsplit(there)
    return urlunsplit(urlsplit(url or "")._replace(scheme=target.scheme, netloc=target.netloc))


def adapter_toml(config: AdapterConfig) -> str:
    """The project's ``adapter.toml`` for ``config`` (comments kept) with the values the demo chose."""
    if config.source_file is None:
        raise UsageError(f"adapter {config.name!r} was not read from a file")
    document = tomlkit.parse(config.source_file.read_text(encoding="utf-8"))
    if config.base_url is not None:
        document["base_url"] = config.base_url
    if config.auth.token_url is not None:
        document.setdefault("auth", tomlkit.table())["token_url"] = config.auth.token_url
    if config.kind is SourceKind.HL7V2:
        hl7 = document.setdefault("hl7v2", tomlkit.table())
        hl7["mode"] = config.hl7v2.mode
        hl7["drop_dir"] = config.hl7v2.drop_dir
    return tomlkit.dumps(document)


def _toml_value(value: object) -> str:
    return tomlkit.item(value).as_string()


def write_demo_config(
    data_dir: Path, *, port: int, configs: Sequence[AdapterConfig], environ: Mapping[str, str]
) -> Path:
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
                f" jwks_file = {_toml_value(str(issuer.jwks_path))} }}]",
                f"local_signing_key_file = {_toml_value(str(issuer.key_path))}",
                "",
                "[security]",
                "# the demo's one token is every user at once (a browser, scripts, the conformance pack): the",
                "# per-user allowance sized for one clinician (5/s) would throttle it; a deployment keeps the defaults",
                "user_rate_limit_per_second = 50",
                "user_rate_limit_burst = 500",
                "",
                "[paths]",
                'adapters_dir = "adapters"',
                f"mappings_dir = {_toml_value(str(find_project_dir('mappings')))}",
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
    p.add_argument(
        "--density",
        type=float,
        default=1.0,
        help="history per person: 1 a shared-care-record-like record (default, ~150 resources), 0 sparse (~9)",
    )
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
    if not 0 <= args.density <= 8:
        raise UsageError(f"--density must be between 0 and 8, got {args.density:g}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be a TCP port, got {args.port}")
    require_sandbox("demo")
    from bcconnect_sandbox import SandboxSettings, running_sandboxes

    settings_from(args)  # logging set-up; the demo writes its own configuration below
    # take the port before generating or syncing anything: a busy port is one sentence now, not a traceback later
    listening = [] if args.no_serve else [listen("127.0.0.1", args.port)]
    adapters_dir = find_project_dir("adapters")
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "bcconnect.db").unlink(missing_ok=True)  # a demo starts from an empty store
    for suffix in ("-wal", "-shm"):
        (data_dir / f"bcconnect.db{suffix}").unlink(missing_ok=True)
    drop_dir = data_dir / "hl7-drop" / "rbk"
    drop_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> int:
        started = time.perf_counter()
        sandbox = SandboxSettings(persons=args.persons, seed=args.seed, density=args.density)
        async with running_sandboxes(sandbox, hl7_drop_dir=drop_dir) as world:
            configs, environ = demo_adapters(world, adapters_dir=adapters_dir, hl7_drop_dir=drop_dir)
            config_path = write_demo_config(data_dir, port=args.port, configs=configs, environ=environ)
            world.write_ground_truth(data_dir / "ground_truth.csv")
            await world.deliver_hl7()
            settings = load_settings(config_path, required=True)
            print(
                f"bcconnect demo: {args.persons} synthetic people across four trusts"
                f" (seed {args.seed}, density {args.density:g})"
            )
            async with open_store(settings.store_url()) as store:
                with Bars("syncing") as bars:
                    reports = await sync_adapters(
                        configs, settings=settings, store=store, environ=environ, progress=sync_progress(bars)
                    )
                _print_sync(reports)
                # the population's history is drawn up to the sandbox's "now": cohorts are counted at that moment
                runs = await Cohorts.from_settings(settings, View(store)).compute(as_of=world.now)
                sizes = ", ".join(f"{r.group_id} {r.member_count}" for r in runs)
                print(f"  cohorts (as at {world.now:%Y-%m-%d %H:%M} UTC): {sizes}")
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
                    print(f'  curl -H "Authorization: Bearer $TOKEN" "{base}/Group?_summary=count"   (cohorts)')
                    print(f'  curl -H "Authorization: Bearer $TOKEN" {base}/Group/ltc-3plus')
                    print("\nPress Ctrl-C to stop. A bearer token for the requests above (valid 1 hour):")
                    print(f"TOKEN={token}", flush=True)

                await serve_api(settings, store=store, on_ready=announce, listening=listening)
        return 0

    outcome: list[int] = []

    async def run() -> None:
        outcome.append(await go())

    try:
        if anyio.run(until_stopped, run):
            print("\nbcconnect demo: stopped", flush=True)
            return 0
    finally:
        for sock in listening:
            sock.close()
    return outcome[0]


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
