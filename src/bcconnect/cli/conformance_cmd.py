"""``bcconnect conformance run|list``: test a FHIR server or a trust's source system, black-box."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from bcconnect.cli.common import SubParsers
from bcconnect.conformance import PACKS, console_summary, run_pack, write_reports
from bcconnect.errors import UsageError

#: command-line flags that become run options (flag name → option name)
_OPTION_FLAGS = (
    "token",
    "objector",
    "restricted",
    "probe_types",
    "client_id",
    "client_secret",
    "token_url",
    "api_key",
    "types",
    "messages",
    "wait",
    "idle",
    "max_pages",
    "rate",
)


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add the ``conformance`` command group."""
    group = sub.add_parser("conformance", help="black-box conformance tests of a FHIR server or a source system")
    group_sub = group.add_subparsers(dest="conformance_command", metavar="SUBCOMMAND")
    listing = group_sub.add_parser("list", help="the packs and their checks")
    listing.add_argument("--pack", choices=sorted(PACKS), help="only this pack")
    listing.set_defaults(handler=_list)
    run = group_sub.add_parser("run", help="run a pack against a target and write reports")
    run.add_argument("--pack", required=True, choices=sorted(PACKS), help="which pack to run")
    run.add_argument(
        "--target",
        required=True,
        help="FHIR base URL (server, source-fhir), API base URL (source-json), or mllp://HOST:PORT to listen on "
        "(source-hl7)",
    )
    run.add_argument("--report", metavar="DIR", help="write report.json, junit.xml and report.html here")
    run.add_argument("--check", action="append", default=[], metavar="ID", help="run only this check (repeatable)")
    run.add_argument("--verbose", action="store_true", help="list passing checks too")
    run.add_argument("--token", help="bearer token for the server pack")
    run.add_argument("--objector", metavar="NHS_NUMBER", help="server pack: a person in the objection register")
    run.add_argument("--restricted", metavar="NHS_NUMBER", help="server pack: a restricted (R) patient")
    run.add_argument(
        "--probe-types",
        metavar="TYPES",
        help="server pack: probe the listed search parameters of these comma-separated types only (default: all)",
    )
    run.add_argument("--client-id", help="source-fhir: OAuth2 client id")
    run.add_argument("--client-secret", help="source-fhir: OAuth2 client secret")
    run.add_argument("--token-url", help="source-fhir: token endpoint (default: discovered)")
    run.add_argument("--api-key", help="source-json: the X-API-Key")
    run.add_argument("--types", help="source-fhir: comma-separated resource types (default: all offered)")
    run.add_argument("--messages", type=int, help="source-hl7: distinct messages to capture (default 40)")
    run.add_argument("--wait", type=float, help="source-hl7: seconds to wait for the first message (default 60)")
    run.add_argument("--idle", type=float, help="source-hl7: seconds of silence that end the capture (default 15)")
    run.add_argument("--max-pages", type=int, help="bound on paging walks (default 40)")
    run.add_argument("--rate", type=float, help="most requests per second (default 15; 0: no limit)")
    run.set_defaults(handler=_run)


def _list(args: argparse.Namespace) -> int:
    for name, pack in PACKS.items():
        if args.pack and name != args.pack:
            continue
        print(f"{name}: {pack.title} — {len(pack.checks)} checks")
        for c in pack.checks:
            print(f"  {c.id:45} {c.severity.value:7} {c.title}")
            print(f"  {'':45} {'':7} {c.spec.url} ({c.spec.section})")
    return 0


def _run(args: argparse.Namespace) -> int:
    target: str = args.target
    if args.pack == "source-hl7":
        if not target.startswith("mllp://"):
            raise UsageError("--pack source-hl7 needs --target mllp://HOST:PORT (the address to listen on)")
    elif not target.startswith(("http://", "https://")):
        raise UsageError(f"--target must be an http(s) URL for --pack {args.pack}, got {target!r}")
    options = {name: str(getattr(args, name)) for name in _OPTION_FLAGS if getattr(args, name) is not None}
    known = {c.id for c in PACKS[args.pack].checks}
    unknown = [c for c in args.check if c not in known]
    if unknown:
        raise UsageError(f"no check {', '.join(unknown)} in pack {args.pack} (see 'bcconnect conformance list')")
    report = anyio.run(lambda: run_pack(args.pack, target, options, only=args.check))
    print(console_summary(report, verbose=args.verbose))
    if args.report:
        paths = write_reports(report, Path(args.report))
        print(f"reports: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0 if report.passed else 1
