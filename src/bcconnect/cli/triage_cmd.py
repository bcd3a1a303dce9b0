"""``bcconnect triage worklist`` and ``bcconnect waiting-list summary|long-waiters|mutual-aid``.

Read through the view like every other reader (objection, sensitivity and restriction apply), as the
operator running the command. ``--format table`` (default, for people), ``csv`` or ``json`` (for scripts).
"""

from __future__ import annotations

import argparse
import getpass
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import anyio

from bcconnect.cli.common import SubParsers, print_table, settings_from
from bcconnect.config import Settings
from bcconnect.errors import UsageError
from bcconnect.store import open_store
from bcconnect.triage import LONG_WAIT_WEEKS, Triage, load_triage_config
from bcconnect.view import AccessContext, View

FORMATS = ("table", "csv", "json")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--as-of", type=_date, help="count waits at this date (YYYY-MM-DD; default: today)")
    p.add_argument("--networks", type=Path, help="triage configuration file (default: the package's networks.toml)")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``triage`` and ``waiting-list``."""
    triage = sub.add_parser("triage", help="referral triage across the trusts")
    tsub = triage.add_subparsers(dest="triage_command", required=True)
    worklist = tsub.add_parser("worklist", help="referrals awaiting triage in a clinical network")
    worklist.add_argument("--network", required=True, help="clinical network (ENT, Breast, Urology, …)")
    worklist.add_argument("--trust", help="only referrals to this trust (ODS code)")
    worklist.add_argument("--priority", choices=("routine", "urgent", "asap"), help="only this priority")
    worklist.add_argument("--no-context", action="store_true", help="skip the cross-site context (faster)")
    _common(worklist)
    worklist.set_defaults(handler=_worklist)

    rebuild = tsub.add_parser("rebuild", help="build the triage read model again from the store (after a restore)")
    _common(rebuild)
    rebuild.set_defaults(handler=_rebuild)

    waiting = sub.add_parser("waiting-list", help="the shared RTT waiting list across the trusts")
    wsub = waiting.add_subparsers(dest="waiting_command", required=True)
    summary = wsub.add_parser("summary", help="per trust and TFC: size, median, 92nd percentile, 18 weeks, long waits")
    _common(summary)
    summary.set_defaults(handler=_summary)
    long_waiters = wsub.add_parser("long-waiters", help="open pathways past --min-weeks (default 52)")
    long_waiters.add_argument("--min-weeks", type=int, default=52, help="waiting more than this many weeks")
    long_waiters.add_argument("--tfc", help="treatment function code (120 = ENT)")
    long_waiters.add_argument("--trust", help="current provider (ODS code)")
    long_waiters.add_argument("--pidmas-eligible", action="store_true", help="only PIDMAS-eligible pathways")
    _common(long_waiters)
    long_waiters.set_defaults(handler=_long_waiters)
    aid = wsub.add_parser("mutual-aid", help="PIDMAS-eligible pathways and providers with shorter waits")
    aid.add_argument("--with-pairing", action="append", default=[], help="switch a proposed pairing on (name prefix)")
    _common(aid)
    aid.set_defaults(handler=_mutual_aid)


def _operator() -> AccessContext:
    """The operator at the terminal: direct care purpose, no sensitive records, the screen applies."""
    return AccessContext(user=f"cli:{getpass.getuser()}", role="operator", purpose="directcare")


def _run(args: argparse.Namespace, work: Callable[[Triage], Awaitable[tuple[list[str], list[list[Any]]]]]) -> int:
    settings: Settings = settings_from(args)
    config = load_triage_config(args.networks) if args.networks else load_triage_config()
    for name in getattr(args, "with_pairing", []):
        if not any(p.name.lower().startswith(name.lower()) for p in config.pairings):
            raise UsageError(f"no pairing named {name!r}; known: {', '.join(p.name for p in config.pairings)}")
        config = config.with_pairing(name, enabled=True)

    async def go() -> tuple[list[str], list[list[Any]]]:
        async with open_store(settings.store_url()) as store:
            view = View(store, default_count=settings.api.default_count, max_count=settings.api.max_count)
            return await work(Triage(view, config))

    header, rows = anyio.run(go)
    print_table(header, rows, args.format)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    """Forget the read model and build it from every referral, pathway part and appointment in the store."""

    async def work(triage: Triage) -> tuple[list[str], list[list[Any]]]:
        started = time.perf_counter()
        read = await triage.model.rebuild()
        counts = await triage.model.counts()
        return ["resources read", *counts, "seconds"], [
            [read, *counts.values(), round(time.perf_counter() - started, 1)]
        ]

    return _run(args, work)


def _worklist(args: argparse.Namespace) -> int:
    async def work(triage: Triage) -> tuple[list[str], list[list[Any]]]:
        items = await triage.worklist(
            _operator(),
            args.network,
            trust=args.trust,
            priority=args.priority,
            as_of=args.as_of,
            with_context=not args.no_context,
        )
        header = ["priority", "days_waiting", "trust", "ubrn", "reason", "person", "duplicate_at", "route",
                  "ae_12m", "emergency_12m", "ltc", "flags", "trusts_with_records"]  # fmt: skip
        rows = []
        for i in items:
            ctx = i.context
            rows.append([
                i.priority_label, i.days_waiting, i.referral.trust, i.referral.ubrn, i.referral.reason_text,
                i.person, ",".join(d.trust for d in i.duplicates), i.route or "",
                len(ctx.ae_attendances) if ctx else None, len(ctx.emergency_admissions) if ctx else None,
                ctx.long_term_conditions if ctx else None, ",".join(ctx.flags) if ctx else None,
                ",".join(ctx.trusts) if ctx else None,
            ])  # fmt: skip
        return header, rows

    return _run(args, work)


def _summary(args: argparse.Namespace) -> int:
    async def work(triage: Triage) -> tuple[list[str], list[list[Any]]]:
        summary = await triage.summary(_operator(), as_of=args.as_of)
        header = ["trust", "tfc", "size", "median_weeks", "p92_weeks", "within_18_weeks_pct",
                  *[f"over_{w}" for w in LONG_WAIT_WEEKS]]  # fmt: skip
        rows = [
            [s.trust, s.tfc, s.size, s.median_weeks, s.p92_weeks, round(100 * s.within_18_weeks, 1),
             *[s.over[w] for w in LONG_WAIT_WEEKS]]
            for s in summary
        ]  # fmt: skip
        return header, rows

    return _run(args, work)


def _long_waiters(args: argparse.Namespace) -> int:
    if args.min_weeks < 0:
        raise UsageError("--min-weeks must not be negative")

    async def work(triage: Triage) -> tuple[list[str], list[list[Any]]]:
        rows = await triage.waiting_list(
            _operator(),
            tfc=args.tfc,
            trust=args.trust,
            min_weeks=args.min_weeks,
            pidmas_eligible=args.pidmas_eligible,
            as_of=args.as_of,
        )
        header = ["weeks_waited", "trust", "tfc", "priority", "clock_start", "ppi", "person", "next_activity",
                  "pidmas_eligible", "exclusions"]  # fmt: skip
        return header, [
            [r.weeks_waited, r.trust, r.tfc, r.priority, r.clock.start, r.ppi, r.person, r.next_activity,
             r.pidmas_eligible, "; ".join(r.exclusions)]
            for r in rows
        ]  # fmt: skip

    return _run(args, work)


def _mutual_aid(args: argparse.Namespace) -> int:
    async def work(triage: Triage) -> tuple[list[str], list[list[Any]]]:
        offers = await triage.mutual_aid(_operator(), as_of=args.as_of)
        header = ["weeks_waited", "trust", "tfc", "ppi", "person", "current_median_weeks", "alternatives"]

        def offer(a: Any) -> str:
            return f"{a.trust} ({a.median_weeks} wk{', ' + a.pairing if a.pairing else ''})"

        return header, [
            [o.row.weeks_waited, o.row.trust, o.row.tfc, o.row.ppi, o.row.person, o.current_median_weeks,
             "; ".join(offer(a) for a in o.alternatives)]
            for o in offers
        ]  # fmt: skip

    return _run(args, work)
