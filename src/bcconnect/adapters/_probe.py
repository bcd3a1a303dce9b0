"""``probe``: what a FHIR source offers, what the mapping set maps, and what a sync will therefore do."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import httpx

from bcconnect.adapters._fhir import FetchPlan, FhirApiSource
from bcconnect.adapters._open import open_source
from bcconnect.config import AdapterConfig, SourceKind
from bcconnect.errors import UsageError


@dataclass(frozen=True, slots=True)
class TypeVerdict:
    """One resource type: offered by the server? mapped by the set? the server's count, and the action."""

    resource_type: str
    offered: bool
    mapped: bool
    count: int | None
    search_params: tuple[str, ...]
    #: "request (n)" with its place in the request order, "report: offered, not mapped" or "skip: not offered"
    action: str


@dataclass(slots=True)
class Probe:
    """What :func:`probe_fhir_source` found."""

    adapter: str
    base_url: str
    token_endpoint: str | None
    plan: FetchPlan
    types: list[TypeVerdict] = field(default_factory=list)


async def probe_fhir_source(
    config: AdapterConfig,
    *,
    mapped_types: Collection[str],
    environ: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Probe:
    """Read the source's CapabilityStatement (and SMART discovery, through the first authenticated call) and
    count each offered type with ``_summary=count``; nothing is stored."""
    if config.kind is not SourceKind.FHIR_API:
        raise UsageError(f"adapter {config.name!r} is {config.kind.value}: only fhir_api sources can be probed")
    async with open_source(config, environ=environ, transport=transport, mapped_types=mapped_types) as source:
        assert isinstance(source, FhirApiSource)  # open_source returns the kind the config names
        plan = await source.plan()
        offered = plan.offered
        counts = {t: await source.count(t) for t in sorted(offered)} if offered else {}
        order = {t: i for i, t in enumerate(plan.requested, start=1)}
        verdicts: list[TypeVerdict] = []
        for rtype in sorted(set(offered) | set(mapped_types) | set(plan.requested)):
            is_offered, is_mapped = rtype in offered or not offered, rtype in mapped_types
            if rtype in order:
                action = f"request ({order[rtype]})"
            elif is_offered and not is_mapped:
                action = "report: offered, not mapped"
            else:
                action = "skip: not offered"
            verdicts.append(
                TypeVerdict(rtype, rtype in offered, is_mapped, counts.get(rtype), offered.get(rtype, ()), action)
            )
        return Probe(config.name, config.base_url or "", source.token_endpoint, plan, verdicts)
