"""What every command shares: reading the configuration named by the global ``--config``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bcconnect.config import DEFAULT_CONFIG_FILE, Settings, load_settings
from bcconnect.errors import UsageError
from bcconnect.logging import configure_logging

# argparse exposes no public name for the sub-command collection
SubParsers = argparse._SubParsersAction


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
