"""``bcconnect token issue``, ``bcconnect audit verify`` and ``bcconnect objection add|remove|list``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio

from bcconnect.cli import common
from bcconnect.config import Settings
from bcconnect.errors import UsageError
from bcconnect.security import (
    DIRECT_CARE,
    AuditAnchor,
    ChainReport,
    ChainState,
    Objection,
    PruneResult,
    ShipReport,
    Sink,
    add_objection,
    audit_anchor_dir,
    audit_chains,
    audit_partitions,
    close_idle_segments,
    default_partition_events,
    ensure_audit_months,
    ensure_local_issuer,
    list_objections,
    next_month,
    prune_audit_trail,
    remove_objection,
    ship_closed_segments,
    sink_from_url,
    verify_audit_chain,
    verify_audit_exports,
)
from bcconnect.store import Store, Tx, open_store

T = TypeVar("T")


def register(subparsers: common.SubParsers[argparse.ArgumentParser]) -> None:
    """Add the ``token``, ``audit`` and ``objection`` command groups."""
    token = subparsers.add_parser("token", help="local development access tokens")
    token_sub = token.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    issue = token_sub.add_parser(
        "issue",
        help="sign an access token with the local development key (printed as the last line)",
        description="Sign a token the local server trusts. Development and demos only.",
    )
    issue.add_argument("--scope", action="append", required=True, help="SMART scope; repeat or space-separate")
    issue.add_argument("--user", required=True, help="requesting user (SDS user id)")
    issue.add_argument("--org", required=True, help="requesting organisation (ODS code)")
    issue.add_argument("--purpose", default=DIRECT_CARE, help="purpose of use (default: directcare)")
    issue.add_argument("--role", default="R8000", help="SDS role profile (default: R8000)")
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default: 3600)")
    issue.add_argument("--patient", default=None, help="confine patient/ scopes to this Patient id")
    issue.add_argument("--data-dir", default=None, help="where the local key lives (default: paths.data_dir)")
    issue.set_defaults(handler=_token_issue)

    audit = subparsers.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    verify = audit_sub.add_parser("verify", help="check the hash chain of every AuditEvent (exit 1 if broken)")
    verify.set_defaults(handler=_audit_verify)
    checkpoint = audit_sub.add_parser(
        "checkpoint", help="sign the chain head now and record it outside the database (file and log)"
    )
    checkpoint.set_defaults(handler=_audit_checkpoint)
    prune = audit_sub.add_parser(
        "prune",
        help="export events older than [audit] retain_months to [audit] export_dir, checkpoint, then drop them",
    )
    prune.add_argument("--before", default=None, help="drop events recorded before this date (YYYY-MM-DD, UTC)")
    prune.add_argument(
        "--discard", action="store_true", help="drop without exporting (when no export_dir is configured)"
    )
    prune.set_defaults(handler=_audit_prune)
    ship = audit_sub.add_parser(
        "ship", help="send closed audit segments to [audit] ship_url (syslog or HTTP), each at least once"
    )
    ship.set_defaults(handler=_audit_ship)
    maintain = audit_sub.add_parser(
        "maintain",
        help="make this month's and the next months' partitions, move stray events out of the default partition,"
        " close idle segments and ship closed ones (run from a timer)",
    )
    maintain.add_argument("--months-ahead", type=int, default=2, help="partitions made ahead (default 2)")
    maintain.set_defaults(handler=_audit_maintain)

    objection = subparsers.add_parser("objection", help="the register of patients who object to the record")
    obj_sub = objection.add_subparsers(dest="objection_command", metavar="SUBCOMMAND")
    add = obj_sub.add_parser("add", help="record an objection by NHS number")
    add.add_argument("nhs_number")
    add.add_argument("--note", default=None, help="where the objection came from (no clinical detail)")
    add.set_defaults(handler=_objection_add)
    remove = obj_sub.add_parser("remove", help="remove every objection recorded for an NHS number")
    remove.add_argument("nhs_number")
    remove.set_defaults(handler=_objection_remove)
    listing = obj_sub.add_parser("list", help="list the register")
    listing.set_defaults(handler=_objection_list)


def _data_dir(settings: Settings, override: str | None) -> Path:
    return Path(override) if override else settings.resolve(settings.paths.data_dir)


def _token_issue(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    issuer = ensure_local_issuer(_data_dir(settings, args.data_dir))
    scopes = [part for text in args.scope for part in text.split()]
    token = issuer.issue(
        scopes=scopes,
        user=args.user,
        org=args.org,
        purpose=args.purpose,
        role=args.role,
        ttl=args.ttl,
        patient=args.patient,
    )
    print(
        f"# local development token: issuer {issuer.issuer}, audience {issuer.audience},"
        f" expires in {args.ttl} s; trust {issuer.jwks_path}",
        file=sys.stderr,
    )
    print(token)
    return 0


def _in_store(settings: Settings, fn: Callable[[Tx], T], *, write: bool) -> T:
    async def run() -> T:
        async with open_store(settings.store_url()) as store:
            return await (store.write(fn) if write else store.read(fn))

    return anyio.run(run)


def _audit_verify(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    checkpoints = AuditAnchor(audit_anchor_dir(settings)).checkpoints()

    def check(tx: Tx) -> tuple[ChainReport, list[ChainState], int]:
        return verify_audit_chain(tx, checkpoints), audit_chains(tx), default_partition_events(tx)

    report, chains, in_default = _in_store(settings, check, write=False)
    if in_default:
        # verified like any other, but retention cannot drop them by month: say so every time
        print(
            f"warning: {in_default} audit event(s) sit in the default partition (a month without its own);"
            " bcconnect audit maintain moves them into their month's partition"
        )
    exports = (
        sorted(settings.resolve(settings.audit.export_dir).glob("audit-*.ndjson")) if settings.audit.export_dir else []
    )
    if settings.audit.export_dir:
        exported = verify_audit_exports(exports, checkpoints, chains)
        if not exported.ok:
            print(f"exported audit trail BROKEN: {exported.problem}")
            return 1
    if report.ok:
        anchored = f", {len(checkpoints)} signed checkpoint(s) agree" if checkpoints else ", no checkpoints yet"
        shipped = f"; {len(exports)} exported file(s) intact and joined" if exports else ""
        print(f"audit chain intact: {report.events} event(s) in {report.chains} chain(s){anchored}{shipped}")
        return 0
    where = f" at event {report.first_bad_seq}" if report.first_bad_seq is not None else ""
    print(f"audit chain BROKEN{where}: {report.problem} ({report.events} event(s) verified before it)")
    return 1


def _audit_checkpoint(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    chains = [c for c in _in_store(settings, audit_chains, write=False) if c.link > c.base_link and not c.closed]
    if not chains:
        print("no open audit chain holds events: nothing to checkpoint")
        return 0
    anchor = AuditAnchor(audit_anchor_dir(settings))
    for chain in chains:
        point = anchor.checkpoint(chain.link, chain.hash, chain=chain.chain)
        print(f"checkpoint: chain {point.chain} event {point.seq} hash {point.hash} at {point.at}")
    return 0


def _audit_prune(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    if args.before:
        try:
            cutoff = datetime.strptime(args.before, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise UsageError(f"--before {args.before!r} is not a date (YYYY-MM-DD)") from None
    elif settings.audit.retain_months == 0:
        print("retention is off ([audit] retain_months = 0): nothing pruned")
        return 0
    else:
        now = datetime.now(UTC)
        months = now.year * 12 + now.month - 1 - settings.audit.retain_months
        cutoff = datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)
    if not settings.audit.export_dir and not args.discard:
        raise UsageError("no [audit] export_dir is configured: set one, or pass --discard to drop unexported")
    export_dir = settings.resolve(settings.audit.export_dir) if settings.audit.export_dir else None
    anchor = AuditAnchor(audit_anchor_dir(settings))
    before = cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    sink = configured_sink(settings)

    async def run() -> PruneResult:
        async with open_store(settings.store_url()) as store:
            # with a log service configured, a closed segment is dropped only once it has been shipped there
            shipped_to = sink.name if sink is not None else None
            return await prune_audit_trail(
                store, anchor, recorded_before=before, export_dir=export_dir, shipped_to=shipped_to
            )

    try:
        result = anyio.run(run)
    except ValueError as exc:
        print(f"audit prune refused: {exc}")
        return 1
    if not result.removed:
        print(f"no whole month of audit events before {before[:7]}: nothing pruned")
        return 0
    where = (
        f" exported to {len(result.exports)} file(s) in {export_dir}," if export_dir else " (discarded, not exported),"
    )
    dropped = ", ".join(str(m) for m in result.months)
    print(
        f"pruned {result.removed} audit event(s) of month(s) {dropped}:{where}"
        f" {len(result.checkpoints)} checkpoint(s) signed"
    )
    return 0


def configured_sink(settings: Settings) -> Sink | None:
    """The log service ``[audit] ship_url`` names (None: none configured); UsageError for a missing credential."""
    audit = settings.audit
    if not audit.ship_url:
        return None
    authorization = os.environ.get(audit.ship_authorization_env) if audit.ship_authorization_env else None
    if audit.ship_authorization_env and not authorization:
        raise UsageError(f"[audit] ship_authorization_env names {audit.ship_authorization_env}, which is not set")
    return sink_from_url(audit.ship_url, authorization=authorization, timeout=audit.ship_timeout_seconds)


async def ship_once(settings: Settings, store: Store, anchor: AuditAnchor, sink: Sink) -> ShipReport:
    """One shipping round with the configured retry policy (also run periodically by ``serve``)."""
    audit = settings.audit
    return await ship_closed_segments(
        store,
        anchor,
        sink,
        retry_seconds=audit.ship_retry_seconds,
        max_backoff_seconds=audit.ship_max_backoff_seconds,
        timeout_seconds=audit.ship_timeout_seconds,
    )


def _print_shipping(report: ShipReport, sink: Sink) -> int:
    for item in report.shipped:
        print(f"shipped segment {item.chain} (events {item.first_link}–{item.last_link}) to {sink.name}")
    for chain in report.resent_unconfirmed:
        print(
            f"sent segment {chain} again: an earlier attempt ended without an outcome (the receiver may hold it twice)"
        )
    for item in report.failed:
        print(f"NOT shipped: segment {item.chain} (attempt {item.attempts}): will retry")
    if not report.shipped and not report.failed:
        print(f"no closed audit segment is due for {sink.name}")
    return 1 if report.failed else 0


def _audit_ship(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    sink = configured_sink(settings)
    if sink is None:
        raise UsageError("no [audit] ship_url is configured: set syslog+tcp://host:port or an http(s):// collector")
    anchor = AuditAnchor(audit_anchor_dir(settings))

    async def run() -> ShipReport:
        async with open_store(settings.store_url()) as store:
            return await ship_once(settings, store, anchor, sink)

    return _print_shipping(anyio.run(run), sink)


def _audit_maintain(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    if args.months_ahead < 0:
        raise UsageError("--months-ahead must be 0 or more")
    sink = configured_sink(settings)
    anchor = AuditAnchor(audit_anchor_dir(settings))
    now = datetime.now(UTC)
    months = [now.year * 100 + now.month]
    for _ in range(args.months_ahead):
        months.append(next_month(months[-1]))

    async def run() -> tuple[int, int, list[str], ShipReport | None]:
        async with open_store(settings.store_url()) as store:
            in_default = await store.read(default_partition_events)
            # a month with events in the default partition gets its partition too, and they move into it
            strays = await store.read(
                lambda tx: [p.month for p in audit_partitions(tx)[0] if p.partition is None and p.events]
            ) if in_default else []  # fmt: skip
            moved = await store.write(lambda tx: ensure_audit_months(tx, [*months, *strays]))
            closed = await close_idle_segments(store, anchor)
            report = await ship_once(settings, store, anchor, sink) if sink is not None else None
            return in_default, moved, closed, report

    in_default, moved, closed, report = anyio.run(run)
    print(f"audit partitions ready for {', '.join(str(m) for m in months)}")
    if in_default:
        print(f"{in_default} event(s) were in the default partition; {moved} moved into their month's partition")
    if closed:
        print(f"closed {len(closed)} idle segment(s): {', '.join(closed)}")
    if report is not None and sink is not None:
        return _print_shipping(report, sink)
    return 1 if in_default > moved else 0


def _objection_add(args: argparse.Namespace) -> int:
    nhs_number, note = args.nhs_number, args.note
    added = _in_store(common.settings_from(args), lambda tx: add_objection(tx, nhs_number, note=note), write=True)
    print("objection recorded" if added else "an objection was already recorded by hand for this NHS number")
    return 0


def _objection_remove(args: argparse.Namespace) -> int:
    nhs_number = args.nhs_number
    removed = _in_store(common.settings_from(args), lambda tx: remove_objection(tx, nhs_number), write=True)
    print(f"removed {removed} objection record(s)")
    return 0


def _objection_list(args: argparse.Namespace) -> int:
    rows: list[Objection] = _in_store(common.settings_from(args), list_objections, write=False)
    for row in rows:
        print(f"{row.subject}\t{row.origin}\t{row.recorded_at}\t{row.note or ''}")
    print(f"{len(rows)} objection record(s)", file=sys.stderr)
    return 0
