"""``sync``, ``run``, ``status``, ``remap``, ``quarantine`` and ``export``: operating the ingest pipeline."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import anyio
import orjson

from bcconnect.cli.bulk_cmd import export_group
from bcconnect.cli.common import SubParsers, read_input_file, settings_from
from bcconnect.cli.progress import Bars
from bcconnect.cohorts import Cohorts, run_schedule
from bcconnect.config import AdapterConfig, Settings, SourceKind, load_adapters
from bcconnect.errors import UsageError
from bcconnect.ingest import (
    SyncReport,
    held_by_type,
    list_held,
    remap_adapter,
    replay_all,
    replay_quarantined,
    resolve_adapter,
    run_daemon,
    summarise,
    sweep_deletes,
    sync_adapters,
    watermark_of,
)
from bcconnect.mapping import load_mapping_set
from bcconnect.security import record_operator_action
from bcconnect.store import (
    get_quarantine,
    is_stale,
    list_quarantine,
    open_store,
    quarantine_groups,
    resolve_quarantine,
)
from bcconnect.view import View, export_view_ndjson


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add the ingest commands."""
    p = sub.add_parser("sync", help="one pass of every (or one) adapter, then exit")
    p.add_argument("--adapter", metavar="NAME", help="only this adapter")
    p.add_argument(
        "--reconcile-deletes",
        action="store_true",
        help="then list every id each FHIR source holds and tombstone what it no longer has",
    )
    p.set_defaults(handler=_sync)

    p = sub.add_parser("run", help="daemon: every adapter on its schedule, HL7 listeners, optionally the API")
    p.add_argument("--with-api", action="store_true", help="serve the FHIR endpoint in the same process")
    p.set_defaults(handler=_run)

    p = sub.add_parser("status", help="per adapter: last success, watermark, lag, error rate, quarantine depth")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_status)

    p = sub.add_parser("remap", help="re-apply the current mappings to landed records (no call to the trust)")
    p.add_argument("--adapter", metavar="NAME", help="only this adapter")
    p.set_defaults(handler=_remap)

    q = sub.add_parser("quarantine", help="records that could not be taken in")
    qsub = q.add_subparsers(dest="quarantine_command", metavar="ACTION")
    p = qsub.add_parser("list", help="open quarantined records: the total, groups by reason, then the records")
    p.add_argument("--adapter", metavar="NAME")
    p.add_argument("--reason", metavar="TEXT", help="only records whose reason code is TEXT or message contains it")
    p.add_argument("--all", action="store_true", help="include resolved records")
    p.add_argument("--limit", type=int, default=100, help="records listed after the groups (default 100)")
    p.set_defaults(handler=_quarantine_list)
    p = qsub.add_parser("held", help="resources held back because their Patient is missing or quarantined")
    p.add_argument("--adapter", metavar="NAME")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(handler=_quarantine_held)
    p = qsub.add_parser("show", help="one record: reason, details and payload")
    p.add_argument("id", type=int)
    p.set_defaults(handler=_quarantine_show)
    p = qsub.add_parser(
        "replay", help="map a record (or --all of them) again with the current mappings (or a corrected payload)"
    )
    p.add_argument("id", type=int, nargs="?")
    p.add_argument("--payload-file", metavar="FILE", help="replace the payload with this corrected file")
    p.add_argument("--all", action="store_true", help="every open record (narrow with --adapter, --reason)")
    p.add_argument("--adapter", metavar="NAME", help="with --all: only this adapter's records")
    p.add_argument("--reason", metavar="TEXT", help="with --all: only records whose reason or message matches")
    p.set_defaults(handler=_quarantine_replay)
    p = qsub.add_parser("resolve", help="mark a record handled without loading it")
    p.add_argument("id", type=int)
    p.set_defaults(handler=_quarantine_resolve)

    p = sub.add_parser(
        "export",
        help="NDJSON per resource type of the view as a client sees it: golden Patients, references re-pointed to"
        " them (--raw: the trusts' source records as stored, no golden Patients)",
    )
    p.add_argument("--out", metavar="DIR", required=True)
    p.add_argument(
        "--raw",
        action="store_true",
        help="write the source records exactly as stored (source references, no golden Patients) instead of the view",
    )
    p.add_argument(
        "--with-store-meta",
        action="store_true",
        help="keep meta.versionId and meta.lastUpdated (left out by default so two stores compare equal)",
    )
    p.add_argument(
        "--group",
        metavar="ID",
        help="a Bulk Data Group export, run here without HTTP: the Group's members' records as $export writes"
        " them (screened, national data opt-out and objections left out, one file per type)",
    )
    p.add_argument("--type", metavar="TYPES", help="with --group: only these resource types (comma-separated)")
    p.add_argument("--since", metavar="INSTANT", help="with --group: only resources changed after this instant")
    p.add_argument(
        "--elements",
        metavar="NAMES",
        help="with --group: keep only these root elements (Type.element or element, comma-separated) and the"
        " mandatory ones, as $export's _elements",
    )
    p.set_defaults(handler=_export)


def _adapters(settings: Settings, only: str | None = None) -> list[AdapterConfig]:
    directory = settings.resolve(settings.paths.adapters_dir)
    configs = [c for c in load_adapters(directory) if c.enabled] if directory.is_dir() else []
    if only is not None:
        chosen = [c for c in configs if c.name == only]
        if not chosen:
            known = ", ".join(c.name for c in configs) or "none"
            raise UsageError(f"no enabled adapter named {only!r} in {directory} (configured: {known})")
        configs = chosen
    if not configs:
        raise UsageError(f"no adapters configured in {directory}")
    return configs


#: exit status of ``sync`` when every run reached the end but one is DEGRADED (failures exit 1)
EXIT_DEGRADED = 3


def _print_report(report: SyncReport) -> None:
    verdict = {"OK": "ok", "FAILED": f"FAILED: {report.error}", "DEGRADED": f"DEGRADED: {report.degraded}"}
    held = f"; held {report.held}, released {report.released}" if report.held or report.released else ""
    print(
        f"{report.adapter}: fetched {report.fetched} = new {report.new} + changed {report.changed}"
        f" + unchanged {report.unchanged} + quarantined {report.quarantined}"
        f" ({'balanced' if report.balanced else 'NOT BALANCED'}); deleted {report.deleted}{held};"
        f" {report.pages} pages in {report.duration_seconds:.1f}s — {verdict[report.status]}"
    )
    if report.not_mapped_line:
        print(f"{report.adapter}: {report.not_mapped_line}")


def sync_progress(bars: Bars) -> Callable[[str, SyncReport], None]:
    """The sync pipeline's per-page callback drawing each adapter's fetched count and rate."""

    def progress(adapter: str, report: SyncReport) -> None:
        bars.update(adapter, completed=report.fetched)

    return progress


def _sync(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configs = _adapters(settings, args.adapter)

    async def go() -> list[SyncReport]:
        with Bars("syncing") as bars:
            async with open_store(settings.store_url()) as store:
                return await sync_adapters(configs, settings=settings, store=store, progress=sync_progress(bars))

    reports = anyio.run(go)
    for report in reports:
        _print_report(report)
    ok = all(r.ok and r.balanced for r in reports)
    if ok and args.reconcile_deletes:
        anyio.run(partial(_sweep, settings, [c for c in configs if c.kind is SourceKind.FHIR_API]))
    if not ok:
        return 1
    return EXIT_DEGRADED if any(r.status == "DEGRADED" for r in reports) else 0


async def _sweep(settings: Settings, configs: Sequence[AdapterConfig]) -> None:
    mappings_dir = settings.resolve(settings.paths.mappings_dir)
    async with open_store(settings.store_url()) as store:
        for config in configs:
            mapping_set = load_mapping_set(mappings_dir / config.mapping_set)
            report = await sweep_deletes(config, store=store, mapping_set=mapping_set)
            print(
                f"{config.name}: reconciliation sweep listed {sum(report.listed.values())} source ids,"
                f" tombstoned {sum(report.deleted.values())} resources the source no longer has"
            )


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configs = _adapters(settings)

    async def go() -> None:
        async with open_store(settings.store_url()) as store, anyio.create_task_group() as group:
            group.start_soon(lambda: run_daemon(configs, settings=settings, store=store))
            if settings.cohorts.recompute_minutes > 0:
                cohorts = Cohorts.from_settings(settings, View(store))
                group.start_soon(lambda: run_schedule(cohorts, settings.cohorts.recompute_minutes))
            if args.with_api:
                from bcconnect.cli.serve_cmd import serve_api

                group.start_soon(lambda: serve_api(settings, store=store))

    anyio.run(go)
    return 0


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configs = _adapters(settings)

    async def go() -> list[dict[str, object]]:
        async with open_store(settings.store_url()) as store:
            rows: list[dict[str, object]] = []
            now = datetime.now(UTC)
            for config in configs:
                summary = await store.read(partial(summarise, adapter=config.name))
                # the same definition of stale the view states on every response (one source, one rule)
                age, stale = is_stale(summary.cursor_updated_at, config.staleness_limit_seconds, now)
                rows.append(
                    {
                        "adapter": config.name,
                        "ods_code": config.ods_code,
                        "kind": config.kind.value,
                        "last_success": summary.last_success,
                        "watermark": watermark_of(summary.cursor),
                        "last_sync": summary.cursor_updated_at,
                        "lag": _lag(age),
                        "stale": stale,
                        "error_rate": round(summary.error_rate, 3),
                        "last_error": summary.last_error,
                        "quarantine_depth": summary.quarantine_depth,
                        "held": summary.held,
                        "last_status": summary.last_status,
                        "last_detail": summary.last_detail,
                    }
                )
            return rows

    rows = anyio.run(go)
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    header = ("adapter", "ods", "last run", "last success", "watermark", "lag", "error rate", "quarantine", "held")
    table = [
        (
            str(r["adapter"]),
            str(r["ods_code"]),
            str(r["last_status"] or "never"),
            str(r["last_success"] or "never"),
            str(r["watermark"] or "-"),
            str(r["lag"]) + (" STALE" if r["stale"] else ""),
            f"{float(str(r['error_rate'])):.0%}",
            str(r["quarantine_depth"]),
            str(r["held"]),
        )
        for r in rows
    ]
    _print_table(header, table)
    for r in rows:
        if r["last_status"] in ("DEGRADED", "FAILED"):
            print(f"{r['adapter']}: last run {r['last_status']}: {r['last_detail']}")
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())


def _remap(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configs = _adapters(settings, args.adapter)
    mappings_dir = settings.resolve(settings.paths.mappings_dir)

    async def go() -> int:
        failed = 0
        async with open_store(settings.store_url()) as store:
            with Bars("remapping") as bars:
                reports = [
                    await remap_adapter(
                        resolve_adapter(config, settings),
                        store=store,
                        mapping_set=load_mapping_set(mappings_dir / config.mapping_set),
                        progress=lambda name, done: bars.update(name, completed=done),
                    )
                    for config in configs
                ]
        for report in reports:
            print(
                f"{report.adapter}: remapped {report.records} landed records into"
                f" {report.resources_written} resources; {report.failed} failed;"
                f" {report.resolved} quarantined records resolved; {report.released} held resources released"
            )
            failed += report.failed
        return 0 if failed == 0 else 1

    return anyio.run(go)


def _quarantine_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    if args.adapter is not None:
        _adapters(settings, args.adapter)  # an unknown name is an error, never an empty list

    async def go() -> None:
        filters = {"adapter": args.adapter, "include_resolved": args.all, "reason": args.reason}
        async with open_store(settings.store_url()) as store:
            groups = await store.read(lambda tx: quarantine_groups(tx, **filters))
            records = await store.read(lambda tx: list_quarantine(tx, limit=args.limit, **filters))
        total = sum(g.count for g in groups)
        per_adapter: dict[str, int] = {}
        for group in groups:
            per_adapter[group.adapter] = per_adapter.get(group.adapter, 0) + group.count
        which = "quarantined records (open and resolved)" if args.all else "open quarantined records"
        spread = ", ".join(f"{name} {count}" for name, count in sorted(per_adapter.items()))
        print(f"{total} {which}" + (f": {spread}" if spread else ""))
        if groups:
            print(f"\n{len(groups)} group(s) by reason:")
            _print_table(
                ("count", "adapter", "type", "reason", "first id", "message"),
                [(str(g.count), g.adapter, g.record_type, g.reason, str(g.first_id), g.pattern[:90]) for g in groups],
            )
        if not records:
            return
        shown = f"first {len(records)} of {total}" if len(records) < total else f"all {total}"
        print(f"\nrecords ({shown}; --limit N for more):")
        rows = [
            (
                str(r.id),
                r.entry.adapter,
                r.entry.record_type,
                r.entry.stage,
                r.entry.reason.value,
                r.created_at,
                "resolved" if r.resolved_at else "open",
                r.entry.message[:70],
            )
            for r in records
        ]
        _print_table(("id", "adapter", "type", "stage", "reason", "created", "state", "message"), rows)

    anyio.run(go)
    return 0


def _quarantine_held(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def go() -> None:
        async with open_store(settings.store_url()) as store:
            by_type = await store.read(lambda tx: held_by_type(tx, args.adapter))
            held = await store.read(lambda tx: list_held(tx, adapter=args.adapter, limit=args.limit))
        total = sum(by_type.values())
        spread = ", ".join(f"{name} {count}" for name, count in by_type.items())
        print(f"{total} resources held waiting for their Patient" + (f": {spread}" if spread else ""))
        if held:
            print()
            _print_table(
                ("type", "id", "adapter", "source record", "waits for Patient", "held since"),
                [(h.resource_type, h.id, h.adapter, h.source_key, h.patient_id, h.held_at) for h in held],
            )

    anyio.run(go)
    return 0


def _quarantine_show(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def go() -> int:
        async with open_store(settings.store_url()) as store:
            record = await store.read(lambda tx: get_quarantine(tx, args.id))
        if record is None:
            raise UsageError(f"no quarantined record with id {args.id}")
        e = record.entry
        print(f"id:        {record.id}\nadapter:   {e.adapter}\nsource:    {e.source_key}")
        print(f"type:      {e.record_type}\nstage:     {e.stage}\nreason:    {e.reason.value}")
        print(f"mapping:   {e.mapping_id} {e.mapping_version}\ncreated:   {record.created_at}")
        print(f"resolved:  {record.resolved_at or 'no'}\nreplays:   {record.replay_count}")
        print(f"message:   {e.message}")
        for detail in e.details:
            print(f"  - {detail}")
        print("payload:")
        print(e.payload.decode("utf-8", errors="replace"))
        return 0

    return anyio.run(go)


def _quarantine_replay(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.all == (args.id is not None):
        raise UsageError("give one quarantined record id, or --all (with --adapter/--reason to narrow it)")
    if args.all and args.payload_file:
        raise UsageError("--payload-file replaces one record's payload; it cannot go with --all")
    if not args.all and (args.adapter or args.reason):
        raise UsageError("--adapter and --reason narrow --all; with one id they mean nothing")
    mappings_dir = settings.resolve(settings.paths.mappings_dir)
    if args.all:
        return _replay_everything(settings, mappings_dir, adapter=args.adapter, reason=args.reason)
    payload = read_input_file(args.payload_file, option="--payload-file") if args.payload_file else None

    async def go() -> int:
        async with open_store(settings.store_url()) as store:
            record = await store.read(lambda tx: get_quarantine(tx, args.id))
            if record is None:
                raise UsageError(f"no quarantined record with id {args.id}")
            config = next((c for c in _adapters(settings) if c.name == record.entry.adapter), None)
            if config is None:
                raise UsageError(f"quarantined record {args.id} belongs to unknown adapter {record.entry.adapter!r}")
            mapping_set = load_mapping_set(mappings_dir / config.mapping_set)
            result = await replay_quarantined(
                args.id, config=config, store=store, mapping_set=mapping_set, payload=payload
            )
        print(f"{result.quarantine_id}: {'resolved' if result.resolved else 'still failing'} — {result.message}")
        return 0 if result.resolved else 1

    return anyio.run(go)


def _replay_everything(settings: Settings, mappings_dir: Path, *, adapter: str | None, reason: str | None) -> int:
    configs = {c.name: resolve_adapter(c, settings) for c in _adapters(settings, adapter)}

    async def go() -> int:
        mapping_sets = {name: load_mapping_set(mappings_dir / c.mapping_set) for name, c in configs.items()}
        async with open_store(settings.store_url()) as store:
            report = await replay_all(
                configs=configs, mapping_sets=mapping_sets, store=store, adapter=adapter, reason=reason
            )
        for line in report.skipped:
            print(f"skipped {line}")
        print(
            f"replayed {report.tried} quarantined records: {report.resolved} resolved,"
            f" {report.still_failing} still failing" + (f", {len(report.skipped)} skipped" if report.skipped else "")
        )
        return 0 if report.still_failing == 0 and not report.skipped else 1

    return anyio.run(go)


def _quarantine_resolve(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def go() -> int:
        async with open_store(settings.store_url()) as store:
            done = await store.write(lambda tx: resolve_quarantine(tx, args.id))
        if not done:
            raise UsageError(f"no open quarantined record with id {args.id}")
        print(f"{args.id}: resolved")
        return 0

    return anyio.run(go)


def _export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is an existing file; export writes one .ndjson file per type into a folder")
    if args.group is not None:
        if args.raw or args.with_store_meta:
            raise UsageError("--group writes the export as $export does: --raw and --with-store-meta do not apply")
        return export_group(settings, args, out)
    if args.type is not None or args.since is not None or args.elements is not None:
        raise UsageError("--type, --since and --elements select within a --group export; give --group ID")

    async def go() -> dict[str, int]:
        with Bars("exporting", unit="resources") as bars:
            async with open_store(settings.store_url()) as store:
                counts = await export_view_ndjson(
                    View(store),
                    out,
                    with_store_meta=args.with_store_meta,
                    raw=args.raw,
                    progress=lambda rtype, done: bars.update(rtype, completed=done),
                )
                # an export reads every person's record: it is audited like any access
                kind = "raw" if args.raw else "view"
                await record_operator_action(store, action=f"export {kind}", detail=f"{sum(counts.values())} resources")
                return counts

    counts = anyio.run(go)
    for resource_type, count in sorted(counts.items()):
        print(f"{resource_type}: {count}")
    print(f"exported {sum(counts.values())} resources to {out} (persons who object to the shared record left out)")
    return 0
