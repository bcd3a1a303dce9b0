"""What every command shares: the configuration named by the global ``--config``, the optional sandbox, and
stopping cleanly on a signal."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.config import DEFAULT_CONFIG_FILE, Settings, load_settings
from bcconnect.errors import UsageError
from bcconnect.logging import configure_logging

# argparse exposes no public name for the sub-command collection
SubParsers = argparse._SubParsersAction

#: the distribution that simulates the trusts (not part of the engine's wheel)
SANDBOX_DISTRIBUTION = "bcconnect-sandbox"
#: signals that stop a long-running command cleanly: Ctrl-C at a terminal, and what service managers send
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def read_input_file(name: str, *, option: str) -> bytes:
    """The bytes of a file a command line names; UsageError (one sentence, exit 2) when it cannot be read."""
    path = Path(name)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{option} {path} is a folder, not a file") from None
    except OSError as exc:
        raise UsageError(f"{option} {path} cannot be read: {exc.strerror or exc}") from None


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the configuration the global ``--config`` names (defaults when the default file is absent)."""
    path = Path(args.config) if args.config else Path(DEFAULT_CONFIG_FILE)
    settings = load_settings(path, required=bool(args.config))
    configure_logging(
        level=args.log_level or settings.logging.level,
        fmt=args.log_format or settings.logging.format,
    )
    return settings


def require_sandbox(command: str) -> None:
    """Refuse in one sentence when the simulated trusts (their own distribution) are not installed."""
    if importlib.util.find_spec("bcconnect_sandbox") is None:
        raise UsageError(
            f"'{command}' needs the simulated trusts, which are not installed: install the {SANDBOX_DISTRIBUTION}"
            " distribution from the project's sandbox/ folder (scripts/bootstrap does)"
        )


async def until_stopped(work: Callable[[], Awaitable[object]]) -> bool:
    """Run ``work`` until it returns or SIGINT/SIGTERM arrives; True when a signal stopped it.

    The handlers are installed here, explicitly, so a command started in the background (where SIGINT is
    ignored and no KeyboardInterrupt ever comes) still stops on SIGTERM, and Ctrl-C at a terminal still works.
    """
    stopped = False
    failure: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal stopped
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                async for _ in signals:
                    stopped = True
                    group.cancel_scope.cancel()
                    return

        group.start_soon(watch)
        try:
            await work()
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        # raised as itself, not wrapped in the task group's ExceptionGroup, so an expected failure (a UsageError:
        # one sentence, exit 2) reaches the command's error handling as it would without the signal watch
        raise failure
    return stopped


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Rows to stdout as ``json`` (a list of objects), ``csv`` (with the header) or an aligned table with a count."""
    if fmt == "json":
        records = [dict(zip(header, r, strict=True)) for r in rows]
        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
        return
    cells = [[str(h) for h in header], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
