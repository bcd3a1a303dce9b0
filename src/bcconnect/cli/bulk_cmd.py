"""``export --group``: a Bulk Data Group export run locally, without HTTP (the same selection and screen)."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

import anyio

from bcconnect.bulk import BulkExports, ExportSummary, Level, export_to_folder, parse_export_request
from bcconnect.cli.progress import Bars
from bcconnect.config import Settings
from bcconnect.errors import InvalidRequest, ResourceNotFound, UsageError
from bcconnect.security import SensitivityPolicy, record_operator_action
from bcconnect.store import open_store
from bcconnect.view import AccessContext, View


def export_group(settings: Settings, args: argparse.Namespace, out: Path) -> int:
    """``export --group ID``: the Group export $export would write, straight into ``out``."""
    given = (("_type", args.type), ("_since", args.since), ("_elements", args.elements))
    parameters = [(name, value) for name, value in given if value is not None]
    operator = AccessContext(
        user=f"os:{getpass.getuser()}", purpose="operations", client_id="bcconnect-cli", readable_types=None
    )

    async def go() -> ExportSummary:
        async with open_store(settings.store_url()) as store:
            policy = SensitivityPolicy.from_settings(settings.security)
            view = View(store, sensitivity=policy, max_count=1000)
            served = [c.resource_type for c in await view.capabilities(operator)]
            try:
                request = parse_export_request(Level.GROUP, parameters, served_types=served, group_id=args.group)
            except InvalidRequest as exc:
                text = str(exc).replace("_type", "--type").replace("_since", "--since")
                raise UsageError(text.replace("_elements", "--elements")) from None
            exports = BulkExports.from_settings(settings, view)
            with Bars("exporting", unit="resources") as bars:
                try:
                    summary = await export_to_folder(
                        view, operator, request, out, opt_out=exports.opt_out, group_members=exports.group_members,
                        max_file_bytes=int(settings.bulk.max_file_mb * 1024 * 1024),
                        progress=lambda rtype, done: bars.update(rtype, completed=done),
                    )  # fmt: skip
                except ResourceNotFound as exc:
                    raise UsageError(f"--group {args.group}: {exc}") from None
            withheld = ", ".join(f"{k} {v}" for k, v in sorted(summary.withheld.items()))
            total = sum(summary.counts.values())
            # a population export is audited like any access to patient data
            await record_operator_action(
                store, action=f"export group {args.group}", detail=f"{total} resources; persons left out: {withheld}"
            )
            return summary

    summary = anyio.run(go)
    for resource_type, count in sorted(summary.counts.items()):
        print(f"{resource_type}: {count}")
    left_out = ", ".join(f"{v} ({k})" for k, v in sorted(summary.withheld.items()))
    print(
        f"exported {sum(summary.counts.values())} resources of Group {args.group} to {out} in {len(summary.files)}"
        f" files; persons left out: {left_out}"
    )
    if summary.errors:
        print(f"{len(summary.errors)} error file(s) written: see {', '.join(f.name for f in summary.errors)}")
        return 1
    return 0
