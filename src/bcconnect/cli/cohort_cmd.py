"""``bcconnect cohort list|show|compute|members``: population cohorts from the command line.

``list``      every defined cohort, its size, when computed and how many the opt-out/objection removed;
``show ID``   one cohort's definition and sizes by borough and by GP practice;
``compute``   compute all cohorts (or those named) now;
``members ID`` the cohort's members (golden person id, NHS number, borough, practice) — audited.

``--format table`` (default), ``csv`` or ``json``. Definitions come from ``[cohorts] definitions`` (or the
packaged set), the opt-out list from ``[security] national_opt_out_file``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson

from bcconnect.cli.common import SubParsers, print_table, settings_from
from bcconnect.cohorts import Cohorts, cohort_runs, current_cohort_members
from bcconnect.errors import UsageError
from bcconnect.security import record_operator_action
from bcconnect.store import open_store
from bcconnect.view import View

FORMATS = ("table", "csv", "json")


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``cohort``."""
    cohort = sub.add_parser("cohort", help="population cohorts (3+ long-term conditions, frequent admissions, …)")
    csub = cohort.add_subparsers(dest="cohort_command", required=True, metavar="SUBCOMMAND")
    listing = csub.add_parser("list", help="every defined cohort with its size and when it was computed")
    listing.set_defaults(handler=_list)
    show = csub.add_parser("show", help="one cohort: definition, sizes by borough and by GP practice")
    show.add_argument("cohort", help="cohort id (see 'bcconnect cohort list')")
    show.set_defaults(handler=_show)
    compute = csub.add_parser("compute", help="compute cohorts now (all, or those named)")
    compute.add_argument("cohorts", nargs="*", help="cohort ids (default: every defined cohort)")
    compute.add_argument("--as-of", type=_instant, help="compute as at this instant (ISO 8601; default: now)")
    compute.set_defaults(handler=_compute)
    members = csub.add_parser("members", help="the members of a cohort (audited)")
    members.add_argument("cohort", help="cohort id")
    members.set_defaults(handler=_members)
    for p in (listing, show, compute, members):
        p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


def _instant(text: str) -> datetime:
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or instant") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


Rows = tuple[list[str], list[list[Any]]]


def _run(args: argparse.Namespace, work: Callable[[Cohorts], Awaitable[Rows]]) -> int:
    settings = settings_from(args)

    async def go() -> Rows:
        async with open_store(settings.store_url()) as store:
            return await work(Cohorts.from_settings(settings, View(store)))

    header, rows = anyio.run(go)
    print_table(header, rows, args.format)
    return 0


def _list(args: argparse.Namespace) -> int:
    async def work(cohorts: Cohorts) -> Rows:
        runs = {r.group_id: r for r in await cohort_runs(cohorts.view)}
        rows = []
        for definition in cohorts.definitions.cohorts:
            run = runs.get(definition.id)
            members = await current_cohort_members(cohorts.view, definition.id) if run else None
            rows.append(
                [
                    definition.id,
                    definition.title,
                    len(members) if members is not None else None,
                    run.computed_at if run else "never computed",
                    run.removed_type1 + run.removed_type2 if run else None,
                    run.removed_objection if run else None,
                ]
            )
        return ["id", "title", "members", "computed", "removed_opt_out", "objectors_left_out"], rows

    return _run(args, work)


def _known(cohorts: Cohorts, cohort_id: str) -> None:
    if cohorts.definitions.cohort(cohort_id) is None:
        known = ", ".join(c.id for c in cohorts.definitions.cohorts)
        raise UsageError(f"no cohort named {cohort_id!r}; defined: {known}")


def _show(args: argparse.Namespace) -> int:
    async def work(cohorts: Cohorts) -> Rows:
        _known(cohorts, args.cohort)
        definition = cohorts.definitions.cohort(args.cohort)
        assert definition is not None
        members = await current_cohort_members(cohorts.view, args.cohort)
        if members is None:
            raise UsageError(f"cohort {args.cohort!r} has not been computed yet: run 'bcconnect cohort compute'")
        rows: list[list[Any]] = [["definition", orjson.dumps(definition.rule.as_json()).decode(), None]]
        rows.append(["total", "", len(members)])
        boroughs = Counter(m.borough or "(unknown)" for m in members)
        practices = Counter(m.practice or "(unknown)" for m in members)
        rows += [["borough", name, n] for name, n in sorted(boroughs.items())]
        rows += [["practice", name, n] for name, n in sorted(practices.items())]
        return ["kind", "name", "members"], rows

    return _run(args, work)


def _compute(args: argparse.Namespace) -> int:
    async def work(cohorts: Cohorts) -> Rows:
        for name in args.cohorts:
            _known(cohorts, name)
        runs = await cohorts.compute(args.cohorts or None, as_of=args.as_of)
        await record_operator_action(
            cohorts.view.store,
            action="cohort compute",
            detail=", ".join(f"{r.group_id}={r.member_count}" for r in runs),
        )
        rows = [
            [
                r.group_id,
                r.member_count,
                r.removed_type2,
                r.removed_type1,
                r.removed_objection,
                r.elapsed_ms,
                r.computed_at,
            ]
            for r in runs
        ]
        header = ["id", "members", "removed_national_opt_out", "removed_type1", "objectors_left_out", "ms", "as_of"]
        return header, rows

    return _run(args, work)


def _members(args: argparse.Namespace) -> int:
    async def work(cohorts: Cohorts) -> Rows:
        _known(cohorts, args.cohort)
        members = await current_cohort_members(cohorts.view, args.cohort)
        if members is None:
            raise UsageError(f"cohort {args.cohort!r} has not been computed yet: run 'bcconnect cohort compute'")
        # a list of people is patient data leaving the system: audited like an export
        await record_operator_action(
            cohorts.view.store, action=f"cohort members {args.cohort}", detail=f"{len(members)} persons"
        )
        rows = [[m.person_id, m.nhs_number, m.borough, m.practice] for m in members]
        return ["person", "nhs_number", "borough", "practice"], rows

    return _run(args, work)
