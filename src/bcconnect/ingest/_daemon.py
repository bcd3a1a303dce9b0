"""``bcconnect run``: every adapter on its schedule, and the HL7 v2 MLLP listeners, until cancelled.

Pull adapters are leased (``bcconnect.ingest._leases``): any number of workers may run against one PostgreSQL
and each adapter is polled by one of them at a time — or, with ``[ingest] lease_by = "resource_type"``, each
resource type of a FHIR API adapter is (lease ``adapter:<name>:<type>``), so several workers share one trust.
Push adapters (MLLP) are bound to their listening port instead: run them on one worker, or behind a load
balancer that sends each feed to one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import anyio
import anyio.abc

from bcconnect.adapters import CircuitBreaker, FhirApiSource, MllpDelivery, Page, open_source, request_order, serve_mllp
from bcconnect.config import AdapterConfig, Settings, SourceKind
from bcconnect.errors import BcconnectError
from bcconnect.hl7v2 import AckCode
from bcconnect.ingest._leases import acquire_lease, list_leases, release_lease, worker_identity
from bcconnect.ingest._sync import process_page, resolve_adapter, sync_adapter
from bcconnect.logging import get_logger
from bcconnect.mapping import MappingSet, load_mapping_set
from bcconnect.store import Store

log = get_logger("bcconnect.ingest")


def is_push(config: AdapterConfig) -> bool:
    """True for adapters the trust pushes to (HL7 v2 over MLLP) rather than ones we poll."""
    return config.kind is SourceKind.HL7V2 and config.hl7v2.mode == "mllp"


def mllp_sink(
    config: AdapterConfig, *, store: Store, mapping_set: MappingSet
) -> Callable[[MllpDelivery], Awaitable[AckCode]]:
    """The sink the MLLP listener calls per message: commit it durably, then say which ACK to send."""

    async def sink(delivery: MllpDelivery) -> AckCode:
        records = (delivery.record,) if delivery.record is not None else ()
        rejects = (delivery.reject,) if delivery.reject is not None else ()
        # a push has no cursor: the ACK is the acknowledgement, and it is sent only after this commit
        counts = await process_page(
            Page(records=records, rejects=rejects, cursor=""),
            config=config,
            store=store,
            mapping_set=mapping_set,
        )
        if rejects:
            return AckCode.AR
        return AckCode.AE if counts.quarantined else AckCode.AA

    return sink


async def _poll_forever(
    config: AdapterConfig,
    *,
    store: Store,
    mapping_set: MappingSet,
    environ: Mapping[str, str] | None,
    owner: str,
    lease_seconds: float,
    resource_type: str | None = None,
    shards: int = 1,
    taking: anyio.Lock | None = None,
) -> None:
    """Poll one adapter (or one of its resource types, ``shards`` of them in all) while this worker holds its
    lease. A type is taken only while this worker holds fewer than its fair share of the adapter's types
    (``shards`` over the live workers), and given back after a pass when it holds more — so workers that start
    together split the types, and one that joins later gets some as the others' passes end."""
    breaker = CircuitBreaker(
        source=config.name,
        failure_threshold=config.breaker.failure_threshold,
        reset_seconds=config.breaker.reset_seconds,
    )
    name = f"adapter:{config.name}" if resource_type is None else f"adapter:{config.name}:{resource_type}"
    types = None if resource_type is None else (resource_type,)
    take = partial(acquire_lease, name=name, owner=owner, ttl_seconds=lease_seconds)
    if resource_type is not None:
        await anyio.sleep(lease_seconds / 3)  # workers started together see one another before taking types
    try:
        while True:
            async with taking or _NO_LOCK:  # this worker's types decide one at a time, so the count holds
                if resource_type is not None:
                    held, share = await _share(store, adapter=config.name, owner=owner, shards=shards)
                    got = held < share and await store.write(take)
                else:
                    got = await store.write(take)
            if not got:
                # another worker holds it (or this one has its share); try again well within its lease time
                await anyio.sleep(lease_seconds / 3)
                continue
            log.info("lease_taken", adapter=config.name, lease=name, worker=owner)
            over_share = False
            async with anyio.create_task_group() as group:

                async def renew(scope: anyio.CancelScope = group.cancel_scope) -> None:
                    while True:
                        await anyio.sleep(lease_seconds / 3)
                        if not await store.write(take):
                            log.warning("lease_lost", adapter=config.name, lease=name, worker=owner)
                            scope.cancel()  # stop working on an adapter another worker now owns
                            return

                group.start_soon(renew)
                while True:
                    await sync_adapter(
                        config,
                        store=store,
                        mapping_set=mapping_set,
                        environ=environ,
                        breaker=breaker,
                        resource_types=types,
                    )
                    if resource_type is not None:
                        held, share = await _share(store, adapter=config.name, owner=owner, shards=shards)
                        if held > share:
                            over_share = True
                            group.cancel_scope.cancel()
                            break
                    await anyio.sleep(config.schedule_seconds)
            if over_share:
                await store.write(partial(release_lease, name=name, owner=owner))
                log.info("lease_given_back", adapter=config.name, lease=name, worker=owner)
                await anyio.sleep(lease_seconds)  # long enough for a worker under its share to take it
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.write(partial(release_lease, name=name, owner=owner))
            except BcconnectError as exc:  # the store is gone: the lease simply expires
                log.warning("lease_not_released", adapter=config.name, lease=name, error=str(exc))


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


async def _share(store: Store, *, adapter: str, owner: str, shards: int) -> tuple[int, int]:
    """How many of ``adapter``'s type leases this worker holds, and its fair share of them (the live workers,
    counted by their presence leases, split ``shards`` types)."""
    now = time.time()
    live = [lease for lease in await store.read(list_leases) if lease.expires_at > now]
    workers = {lease.owner for lease in live if lease.name.startswith("worker:")} | {owner}
    held = sum(1 for lease in live if lease.owner == owner and lease.name.startswith(f"adapter:{adapter}:"))
    return held, math.ceil(shards / len(workers))


async def _presence(store: Store, *, owner: str, lease_seconds: float) -> None:
    """Keep this worker's presence lease (``worker:<id>``) alive: how the others count live workers."""
    name = f"worker:{owner}"
    try:
        while True:
            await store.write(partial(acquire_lease, name=name, owner=owner, ttl_seconds=lease_seconds))
            await anyio.sleep(lease_seconds / 3)
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.write(partial(release_lease, name=name, owner=owner))
            except BcconnectError as exc:
                log.warning("lease_not_released", lease=name, error=str(exc))


async def leased_types(
    config: AdapterConfig, *, mapping_set: MappingSet, environ: Mapping[str, str] | None
) -> tuple[str, ...]:
    """The resource types of a FHIR API adapter, each leased on its own: what the source's fetch plan requests
    (its CapabilityStatement against the mapping set, or the adapter file's list). When the source cannot be
    asked now, every type the mapping set maps — a type the server does not offer then fails in its own
    breaker, as it would in a whole-adapter sync."""
    try:
        async with open_source(config, environ=environ, mapped_types=mapping_set.record_types) as source:
            if isinstance(source, FhirApiSource):
                return (await source.plan()).requested
    except BcconnectError as exc:
        log.warning("fetch_plan_unavailable", adapter=config.name, error=str(exc))
    return tuple(config.fetch.resource_types) or request_order(set(mapping_set.record_types))


async def run_daemon(
    configs: Sequence[AdapterConfig],
    *,
    settings: Settings,
    store: Store,
    environ: Mapping[str, str] | None = None,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Poll each pull adapter on its schedule and serve each push adapter's listener, until cancelled.

    ``task_status.started()`` is reported once every listener is bound (use ``await group.start(...)``).
    """
    mappings_dir = settings.resolve(settings.paths.mappings_dir)
    owner = worker_identity()
    log.info("worker_started", worker=owner, lease_seconds=settings.ingest.lease_seconds)
    present = False  # this worker's presence lease runs once any adapter is leased by resource type
    taking = anyio.Lock()
    async with anyio.create_task_group() as group:
        for raw_config in configs:
            config = resolve_adapter(raw_config, settings)
            try:
                mapping_set = load_mapping_set(mappings_dir / config.mapping_set)
            except BcconnectError as exc:
                log.error("adapter_not_started", adapter=config.name, error=str(exc))
                continue
            if is_push(config):
                await group.start(partial(serve_mllp, config, mllp_sink(config, store=store, mapping_set=mapping_set)))
                log.info("mllp_listening", adapter=config.name, port=config.hl7v2.listen_port)
            else:
                shards: tuple[str | None, ...] = (None,)
                if settings.ingest.lease_by == "resource_type" and config.kind is SourceKind.FHIR_API:
                    shards = await leased_types(config, mapping_set=mapping_set, environ=environ)
                    log.info("leases_per_resource_type", adapter=config.name, resource_types=list(shards))
                    if not present:
                        present = True
                        group.start_soon(
                            partial(_presence, store, owner=owner, lease_seconds=settings.ingest.lease_seconds)
                        )
                for resource_type in shards:
                    group.start_soon(
                        partial(
                            _poll_forever,
                            config,
                            store=store,
                            mapping_set=mapping_set,
                            environ=environ,
                            owner=owner,
                            lease_seconds=settings.ingest.lease_seconds,
                            resource_type=resource_type,
                            shards=len(shards),
                            taking=taking,
                        )
                    )
        task_status.started()
