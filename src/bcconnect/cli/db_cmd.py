"""``bcconnect db upgrade`` (apply schema migrations) and ``bcconnect db status`` (list them)."""

from __future__ import annotations

import argparse

import anyio

from bcconnect.cli import common
from bcconnect.store import MigrationStatus, open_store


def register(subparsers: common.SubParsers[argparse.ArgumentParser]) -> None:
    """Add the ``db`` command group."""
    db = subparsers.add_parser("db", help="the store's schema")
    sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    upgrade = sub.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=_upgrade)
    status = sub.add_parser("status", help="list schema migrations and whether each is applied")
    status.set_defaults(handler=_status)


def _upgrade(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)

    async def run() -> list[int]:
        async with open_store(settings.store_url(), migrate=False) as store:
            return await store.upgrade()

    applied = anyio.run(run)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(f"{n:04d}" for n in applied) if applied else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)

    async def run() -> list[MigrationStatus]:
        async with open_store(settings.store_url(), migrate=False) as store:
            return await store.migration_status()

    for item in anyio.run(run):
        print(f"{item.number:04d}  {item.name:<32} {item.applied_at or 'pending'}")
    return 0
