"""``open_source``: build the right source for an adapter configuration, with its HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager

import httpx

from bcconnect.adapters._auth import make_authenticator
from bcconnect.adapters._breaker import CircuitBreaker
from bcconnect.adapters._fhir import FhirApiSource
from bcconnect.adapters._hl7_files import Hl7FileSource
from bcconnect.adapters._http import Runtime, SourceHttp
from bcconnect.adapters._json_api import JsonApiSource
from bcconnect.adapters._types import Source
from bcconnect.config import AdapterConfig, SourceKind
from bcconnect.errors import ConfigError


@asynccontextmanager
async def open_source(
    config: AdapterConfig,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    runtime: Runtime | None = None,
    breaker: CircuitBreaker | None = None,
    mapped_types: Collection[str] | None = None,
) -> AsyncIterator[Source]:
    """Open the source ``config`` describes; its HTTP client is closed when the block ends.

    ``environ`` supplies the secrets the configuration names (default: the process environment);
    ``transport`` replaces the network (``httpx.MockTransport`` in tests); ``runtime`` replaces randomness,
    clocks and sleeping; ``breaker`` lets a scheduler keep one source's breaker across runs (by default each
    opening starts with a closed breaker of its own); ``mapped_types`` are the record types the mapping set
    maps (a FHIR source requests those its CapabilityStatement offers). HL7 v2 over MLLP is push, not pull:
    use :func:`serve_mllp` for it.
    """
    where = str(config.source_file) if config.source_file else None
    if config.kind is SourceKind.HL7V2:
        if config.hl7v2.mode != "file":
            raise ConfigError("an MLLP source is served with serve_mllp, not opened", file=where, key="hl7v2.mode")
        yield Hl7FileSource(config)
        return
    if not config.base_url:
        raise ConfigError(f"an adapter of kind {config.kind.value!r} needs base_url", file=where, key="base_url")
    run = runtime or Runtime()
    auth = make_authenticator(config, environ=environ, clock=run.monotonic, utcnow=run.utcnow)
    async with httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(config.fetch.timeout_seconds),
        limits=httpx.Limits(max_connections=max(1, config.fetch.concurrency)),
        follow_redirects=False,
        trust_env=False,  # no proxies or certificates picked up from the environment behind our back
        headers={"User-Agent": "bcconnect-adapter"},
    ) as client:
        http = SourceHttp(config, client=client, auth=auth, runtime=run, breaker=breaker)
        if config.kind is SourceKind.FHIR_API:
            yield FhirApiSource(config, http, mapped_types=mapped_types)
        else:
            yield JsonApiSource(config, http)
