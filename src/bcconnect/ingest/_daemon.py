"""``bcconnect run``: every adapter on its schedule, and the HL7 v2 MLLP listeners, until cancelled.

Pull adapters are leased (``bcconnect.ingest._leases``): any number of workers may run against one PostgreSQL
and each adapter is polled by one of them at a time. Push adapters (MLLP) are bound to their listening port
instead: run them on one worker, or behind a load balancer that sends each feed to one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import anyio
import anyio.abc

from bcconnect.adapters import CircuitBreaker, MllpDelivery, Page, serve_mllp
from bcconnect.config import AdapterConfig, Settings, SourceKind
from bcconnect.errors import BcconnectError
from bcconnect.hl7v2 import AckCode
from bcconnect.ingest._leases import acquire_lease, release_lease, worker_identity
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
) -> None:
    breaker = CircuitBreaker(
        source=config.name,
        failure_threshold=config.breaker.failure_threshold,
        reset_seconds=config.breaker.reset_seconds,
    )
    name = f"adapter:{config.name}"
    take = partial(acquire_lease, name=name, owner=owner, ttl_seconds=lease_seconds)
    try:
        while True:
            if not await store.write(take):
                # another worker holds it; try again well within its lease time (it may die)
                await anyio.sleep(lease_seconds / 3)
                continue
            log.info("lease_taken", adapter=config.name, worker=owner)
            async with anyio.create_task_group() as group:

                async def renew(scope: anyio.CancelScope = group.cancel_scope) -> None:
                    while True:
                        await anyio.sleep(lease_seconds / 3)
                        if not await store.write(take):
                            log.warning("lease_lost", adapter=config.name, worker=owner)
                            scope.cancel()  # stop working on an adapter another worker now owns
                            return

                group.start_soon(renew)
                while True:
                    await sync_adapter(config, store=store, mapping_set=mapping_set, environ=environ, breaker=breaker)
                    await anyio.sleep(config.schedule_seconds)
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.write(partial(release_lease, name=name, owner=owner))
            except BcconnectError as exc:  # the store is gone: the lease simply expires
                log.warning("lease_not_released", adapter=config.name, error=str(exc))


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
                group.start_soon(
                    partial(
                        _poll_forever,
                        config,
                        store=store,
                        mapping_set=mapping_set,
                        environ=environ,
                        owner=owner,
                        lease_seconds=settings.ingest.lease_seconds,
                    )
                )
        task_status.started()
