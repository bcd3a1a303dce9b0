"""Entry point: ``bcconnect [--config PATH] COMMAND …``.

Exit codes: 0 success, 1 the work failed, 2 a usage or configuration error (one clear sentence on stderr),
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import cast

from bcconnect import __version__
from bcconnect.cli import common
from bcconnect.errors import BcconnectError, ConfigError, UsageError

Registrar = Callable[["common.SubParsers[argparse.ArgumentParser]"], None]


def _registrars() -> list[Registrar]:
    # Imported here so `bcconnect --version` stays fast and one command's imports never slow another's parse.
    from bcconnect.cli import (
        adapter_cmd,
        cohort_cmd,
        conformance_cmd,
        db_cmd,
        demo_cmd,
        ingest_cmd,
        mappings_cmd,
        mpi_cmd,
        sandbox_cmd,
        security_cmd,
        serve_cmd,
        triage_cmd,
    )

    return [
        demo_cmd.register,
        serve_cmd.register,
        ingest_cmd.register,
        adapter_cmd.register,
        sandbox_cmd.register,
        mappings_cmd.register,
        db_cmd.register,
        mpi_cmd.register,
        security_cmd.register,
        conformance_cmd.register,
        triage_cmd.register,
        cohort_cmd.register,
    ]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear sentence and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"bcconnect: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = _Parser(
        prog="bcconnect",
        description="FHIR R4 shared care record integration engine for the Black Country.",
    )
    parser.add_argument("--version", action="version", version=f"bcconnect {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: bcconnect.toml in the current directory, if present)",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default=None)
    sub = cast(
        "common.SubParsers[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser),
    )
    sub.required = True
    for register in _registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # a command group without a sub-command
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        code = handler(args)
    except (UsageError, ConfigError) as exc:
        print(f"bcconnect: error: {exc}", file=sys.stderr)
        return 2
    except BcconnectError as exc:
        print(f"bcconnect: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _output_closed()
    try:
        sys.stdout.flush()  # a closed pipe shows here when the output was buffered
    except BrokenPipeError:
        return _output_closed()
    return int(code or 0)


def _output_closed() -> int:
    """The reader of our output went away (``bcconnect status --json | head``): say so once, exit 2."""
    # point stdout at /dev/null so the interpreter's final flush does not raise again at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    print("bcconnect: error: the output was closed before everything was written (broken pipe)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
