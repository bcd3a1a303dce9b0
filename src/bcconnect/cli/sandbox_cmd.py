"""``bcconnect sandbox serve`` (the simulated trusts on loopback) and ``bcconnect sandbox generate`` (files).

The simulated trusts are their own distribution (``bcconnect_sandbox``), imported only when one of these commands
runs: without it installed, the rest of the CLI works and these commands say what to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from bcconnect.cli.common import require_sandbox, until_stopped
from bcconnect.cli.progress import Bars

if TYPE_CHECKING:
    from bcconnect_sandbox import FaultSettings, SandboxSettings, World

MIN_PERSONS = 10
#: RL4, RXK and RNA listen on this port and the next two, as the adapter deployments expect
DEFAULT_PORT_BASE = 8101
#: where RBK drops files when no MLLP target is given (the RBK adapter's default drop folder)
DEFAULT_DROP_DIR = Path("hl7-drop/rbk")
MAX_PERSONS = 1_300_000
#: the sandbox's own bound on --density (its settings check it too)
MAX_DENSITY = 8.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` command group."""
    sandbox = subparsers.add_parser("sandbox", help="simulated trust EPRs: serve them or write them to files")
    sub = sandbox.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")

    serve = sub.add_parser("serve", help="serve the simulated trusts on 127.0.0.1 until Ctrl-C")
    _common(serve)
    serve.add_argument("--trust", default="all", choices=_trust_choices(), help="which trust (default all)")
    serve.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="faults as name=value,… e.g. error_rate=0.05,latency_ms=20,burst_429_rate=0.02",
    )
    serve.add_argument("--fault-seed", type=int, default=None, help="seed of the faults (default: --seed)")
    serve.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"RL4 on this port, RXK +1, RNA +2 (default {DEFAULT_PORT_BASE}, as the adapters expect; 0: free)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="listen address (default 127.0.0.1; 0.0.0.0 inside a container)"
    )
    serve.add_argument("--hl7-target", default=None, metavar="HOST:PORT", help="RBK sends MLLP here")
    serve.add_argument(
        "--hl7-drop-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"RBK writes files here (default {DEFAULT_DROP_DIR} when no --hl7-target is given)",
    )
    serve.add_argument(
        "--advance-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="move simulated time on by --advance-days every SECONDS (default: never)",
    )
    serve.add_argument("--advance-days", type=float, default=1.0, metavar="DAYS")
    serve.set_defaults(handler=_serve, sandbox_parser=serve)

    generate = sub.add_parser("generate", help="write per-trust source data and ground_truth.csv")
    _common(generate)
    generate.add_argument("--out", type=Path, required=True, metavar="DIR")
    generate.add_argument("--trust", default="all", choices=_trust_choices())
    generate.set_defaults(handler=_generate, sandbox_parser=generate)


def _trust_choices() -> list[str] | None:
    """The simulated trusts and ``all`` for ``--trust`` (no choices offered when the sandbox is not installed)."""
    if importlib.util.find_spec("bcconnect_sandbox") is None:
        return None
    from bcconnect_sandbox.settings import ALL_TRUSTS

    return [*ALL_TRUSTS, "all"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persons", type=int, default=200, help=f"{MIN_PERSONS}–{MAX_PERSONS:,} (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--density",
        type=float,
        default=1.0,
        metavar="D",
        help="history per person: 0 sparse (~9 records), 1 a shared-care-record-like record (default, ~150), 2 double",
    )
    parser.add_argument(
        "--noise", default="", metavar="SPEC", help="identity noise as name=value,… e.g. nhs_missing=0.1,duplicate=0.05"
    )


def _settings(args: argparse.Namespace, *, faults: FaultSettings | None = None) -> SandboxSettings:
    from bcconnect_sandbox import FaultSettings, NoiseSettings, SandboxSettings
    from bcconnect_sandbox.settings import ALL_TRUSTS

    parser: argparse.ArgumentParser = args.sandbox_parser
    if not MIN_PERSONS <= args.persons <= MAX_PERSONS:
        parser.error(f"--persons must be between {MIN_PERSONS} and {MAX_PERSONS:,}, not {args.persons}")
    if not 0 <= args.density <= MAX_DENSITY:
        parser.error(f"--density must be between 0 and {MAX_DENSITY:g}, not {args.density:g}")
    try:
        noise = NoiseSettings.parse(args.noise)
    except ValueError as exc:
        parser.error(str(exc))
    trusts = ALL_TRUSTS if args.trust == "all" else (args.trust,)
    ports: tuple[tuple[str, int], ...] = ()
    if getattr(args, "port_base", 0):
        ports = tuple((t, args.port_base + n) for n, t in enumerate(("RL4", "RXK", "RNA")))
    return SandboxSettings(
        persons=args.persons,
        seed=args.seed,
        density=args.density,
        trusts=trusts,
        faults=faults or FaultSettings(),
        noise=noise,
        ports=ports,
        host=getattr(args, "host", "127.0.0.1"),
    )


def _generate(args: argparse.Namespace) -> int:
    require_sandbox("sandbox generate")
    from bcconnect_sandbox.generate import generate_to_directory

    settings = _settings(args)
    with Bars("generating", unit="persons") as bars:
        manifest = generate_to_directory(
            settings, args.out, progress=lambda done: bars.update("population", completed=done, total=settings.persons)
        )
    records = manifest["records"]
    assert isinstance(records, dict)
    print(f"wrote {settings.persons:,} persons to {args.out} in {manifest['seconds']} s:")
    for name, count in records.items():
        print(f"  {name}: {count:,}")
    print(f"  total: {sum(records.values()):,} records")
    return 0


def _serve(args: argparse.Namespace) -> int:
    require_sandbox("sandbox serve")
    from bcconnect_sandbox import FaultSettings

    parser: argparse.ArgumentParser = args.sandbox_parser
    try:
        faults = FaultSettings.parse(args.faults, seed=args.seed if args.fault_seed is None else args.fault_seed)
    except ValueError as exc:
        parser.error(str(exc))
    target: tuple[str, int] | None = None
    if args.hl7_target:
        host, _, port = args.hl7_target.rpartition(":")
        if not host or not port.isdigit():
            parser.error(f"--hl7-target must be HOST:PORT, not {args.hl7_target!r}")
        target = (host, int(port))
    settings = _settings(args, faults=faults)
    drop_dir = args.hl7_drop_dir if args.hl7_drop_dir is not None or target is not None else DEFAULT_DROP_DIR
    anyio.run(until_stopped, lambda: _run(settings, target, drop_dir, args.advance_every, args.advance_days))
    print("stopped", file=sys.stderr)
    return 0


async def _run(
    settings: SandboxSettings, target: tuple[str, int] | None, drop_dir: Path | None, every: float, days: float
) -> None:
    from bcconnect_sandbox import running_sandboxes

    async with running_sandboxes(settings, hl7_target=target, hl7_drop_dir=drop_dir) as world:
        _announce(world)
        hl7 = "RBK" in settings.trusts and (target is not None or drop_dir is not None)
        while True:
            if hl7:
                counts = await world.deliver_hl7()
                if counts:
                    print(f"RBK delivered {counts}", flush=True)
            await anyio.sleep(every if every > 0 else 5.0)
            if every > 0:
                gained = await world.advance(days=days)
                print(f"simulated time is now {world.now.isoformat()}; changes {gained}", flush=True)


def _announce(world: World) -> None:
    s = world.settings
    print(
        f"sandbox: {s.persons:,} persons at density {s.density:g}, seed {s.seed}, simulated now {world.now.isoformat()}"
    )
    for trust in s.trusts:
        cred = world.credentials(trust)
        if trust == "RBK":
            hl7 = world.hl7
            where = [f"MLLP to {hl7.target[0]}:{hl7.target[1]}"] if hl7 and hl7.target else []
            where += [f"files into {hl7.drop_dir}"] if hl7 and hl7.drop_dir else []
            print(f"  RBK  HL7 v2 sender: {' and '.join(where) or 'nowhere'}")
            continue
        base = world.base_url(trust)
        if cred.api_key:
            print(f"  {trust}  {base}/api/v2/changes   X-API-Key: {cred.api_key}")
        else:
            print(
                f"  {trust}  {base}/fhir/R4   token {base}/oauth2/token  "
                f"client_id={cred.client_id} client_secret={cred.client_secret}"
            )
    print("Ctrl-C to stop", flush=True)
