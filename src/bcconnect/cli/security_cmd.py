"""``bcconnect token issue``, ``bcconnect audit verify`` and ``bcconnect objection add|remove|list``."""

from __future__ import annotations

import argparse
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
    Objection,
    PruneResult,
    add_objection,
    audit_anchor_dir,
    audit_chain_head,
    ensure_local_issuer,
    list_objections,
    prune_audit_trail,
    remove_objection,
    verify_audit_chain,
    verify_audit_export,
)
from bcconnect.store import Tx, open_store

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
    report: ChainReport = _in_store(settings, lambda tx: verify_audit_chain(tx, checkpoints), write=False)
    exports = (
        sorted(settings.resolve(settings.audit.export_dir).glob("audit-*.ndjson")) if settings.audit.export_dir else []
    )
    for path in exports:
        exported = verify_audit_export(path, checkpoints)
        if not exported.ok:
            print(f"exported audit trail BROKEN: {exported.problem}")
            return 1
    if report.ok:
        anchored = f", {len(checkpoints)} signed checkpoint(s) agree" if checkpoints else ", no checkpoints yet"
        shipped = f"; {len(exports)} exported file(s) intact" if exports else ""
        print(f"audit chain intact: {report.events} event(s){anchored}{shipped}")
        return 0
    where = f" at event {report.first_bad_seq}" if report.first_bad_seq is not None else ""
    print(f"audit chain BROKEN{where}: {report.problem} ({report.events} event(s) verified before it)")
    return 1


def _audit_checkpoint(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    head = _in_store(settings, audit_chain_head, write=False)
    if head.seq == 0:
        print("the audit trail is empty: nothing to checkpoint")
        return 0
    point = AuditAnchor(audit_anchor_dir(settings)).checkpoint(head.seq, head.hash)
    print(f"checkpoint: event {point.seq} hash {point.hash} at {point.at}")
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

    async def run() -> PruneResult:
        async with open_store(settings.store_url()) as store:
            return await prune_audit_trail(store, anchor, recorded_before=before, export_dir=export_dir)

    try:
        result = anyio.run(run)
    except ValueError as exc:
        print(f"audit prune refused: {exc}")
        return 1
    if not result.removed:
        print(f"no audit events recorded before {before}: nothing pruned")
        return 0
    where = f" exported to {result.export}," if result.export else " (discarded, not exported),"
    seq = result.checkpoint.seq if result.checkpoint else "?"
    print(f"pruned {result.removed} audit event(s) recorded before {before}:{where} checkpoint at event {seq}")
    return 0


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
