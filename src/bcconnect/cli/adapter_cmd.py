"""``adapter probe``: ask a FHIR source what it offers before the first sync."""

from __future__ import annotations

import argparse

import anyio
import orjson

from bcconnect.adapters import Probe, probe_fhir_source
from bcconnect.cli.common import SubParsers, settings_from
from bcconnect.config import load_adapters
from bcconnect.errors import UsageError
from bcconnect.mapping import load_mapping_set


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add the adapter commands."""
    a = sub.add_parser("adapter", help="inspect a configured adapter's source")
    asub = a.add_subparsers(dest="adapter_command", metavar="ACTION")
    asub.required = True
    p = asub.add_parser(
        "probe",
        help="read a FHIR source's CapabilityStatement: the types and parameters it offers, which the mapping"
        " set maps, and what a sync will request or report",
    )
    p.add_argument("name", help="the adapter's name (adapters/<dir>/adapter.toml: name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    directory = settings.resolve(settings.paths.adapters_dir)
    configs = [c for c in load_adapters(directory) if c.name == args.name] if directory.is_dir() else []
    if not configs:
        raise UsageError(f"no adapter named {args.name!r} in {directory}")
    config = configs[0]
    mapping_set = load_mapping_set(settings.resolve(settings.paths.mappings_dir) / config.mapping_set)
    probe = anyio.run(lambda: probe_fhir_source(config, mapped_types=mapping_set.record_types))
    if args.json:
        print(orjson.dumps(_as_json(probe, mapping_set.id), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(probe, mapping_set.id)
    return 0


def _as_json(probe: Probe, set_id: str) -> dict[str, object]:
    return {
        "adapter": probe.adapter,
        "base_url": probe.base_url,
        "token_endpoint": probe.token_endpoint,
        "mapping_set": set_id,
        "basis": probe.plan.basis,
        "requested": list(probe.plan.requested),
        "offered_not_mapped": probe.plan.offered_not_mapped,
        "mapped_not_offered": list(probe.plan.mapped_not_offered),
        "types": [
            {
                "type": v.resource_type,
                "offered": v.offered,
                "mapped": v.mapped,
                "count": v.count,
                "search_params": list(v.search_params),
                "action": v.action,
            }
            for v in probe.types
        ],
    }


def _print(probe: Probe, set_id: str) -> None:
    print(f"{probe.adapter}: FHIR base {probe.base_url}, mapping set {set_id}")
    print(f"token endpoint: {probe.token_endpoint or '-'}")
    print(f"types decided by: {probe.plan.basis}")
    rows = [
        (
            v.resource_type,
            "yes" if v.offered else "no",
            "yes" if v.mapped else "no",
            "?" if v.count is None else str(v.count),
            v.action,
            ", ".join(v.search_params[:6]) + (" …" if len(v.search_params) > 6 else ""),
        )
        for v in probe.types
    ]
    header = ("type", "offered", "mapped", "count", "a sync will", "search parameters")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())
    if probe.plan.offered_not_mapped:
        listed = ", ".join(f"{t} ({'?' if c is None else c})" for t, c in probe.plan.offered_not_mapped.items())
        print(f"offered, not mapped (reported by every sync, never fetched): {listed}")
    no_watermark = [
        v.resource_type
        for v in probe.types
        if v.offered and v.search_params and v.action.startswith("request") and "_lastUpdated" not in v.search_params
    ]
    if no_watermark:
        print(f"note: not listed with _lastUpdated (incremental paging relies on it): {', '.join(no_watermark)}")
