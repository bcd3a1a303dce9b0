"""What the operations page shows, read in one transaction: adapters, quarantine by reason, the identity review
queue and recent failed syncs. Clinical content stays out: quarantine shows reasons and source keys, never
payloads (``bcconnect quarantine show`` is the operator's tool for those)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from bcconnect import metrics
from bcconnect.identity import ReviewItem, count_reviews, list_reviews
from bcconnect.ingest import FailedRun, recent_failed_runs
from bcconnect.ops._collect import AdapterFacts, read_store_facts
from bcconnect.store import QuarantineGroup, QuarantineRecord, Store, Tx, get_quarantine, quarantine_groups


@dataclass(frozen=True, slots=True)
class OpsOverview:
    """Everything on the operations page."""

    adapters: tuple[AdapterFacts, ...]
    #: adapter -> breaker state as this process last saw it (only adapters this process syncs)
    breakers: Mapping[str, str]
    quarantine: tuple[QuarantineGroup, ...]
    reviews: tuple[ReviewItem, ...]
    open_reviews: int
    failed_runs: tuple[FailedRun, ...]
    at: datetime


def _breaker_states(adapters: tuple[AdapterFacts, ...]) -> dict[str, str]:
    states: dict[str, str] = {}
    for adapter in adapters:
        for state in metrics.BREAKER_STATES:
            if REGISTRY.get_sample_value("bcconnect_adapter_breaker_state", {"adapter": adapter.name, "state": state}):
                states[adapter.name] = state
    return states


class OpsService:
    """The operations page's window on the store (built once by the server)."""

    def __init__(self, store: Store, *, ods_codes: Mapping[str, str], staleness_limits: Mapping[str, float]) -> None:
        self._store = store
        self._ods = dict(ods_codes)
        self._limits = dict(staleness_limits)

    async def overview(self, *, review_limit: int = 50, failed_limit: int = 20) -> OpsOverview:
        """The page's facts, consistent with each other (one read snapshot)."""

        def read(tx: Tx) -> OpsOverview:
            facts = read_store_facts(tx, ods_codes=self._ods, staleness_limits=self._limits)
            return OpsOverview(
                adapters=facts.adapters,
                breakers={},
                quarantine=tuple(quarantine_groups(tx)),
                reviews=tuple(list_reviews(tx, limit=review_limit)),
                open_reviews=count_reviews(tx),
                failed_runs=tuple(recent_failed_runs(tx, limit=failed_limit)),
                at=datetime.now(UTC),
            )

        found = await self._store.read(read)
        return replace(found, breakers=_breaker_states(found.adapters))

    async def quarantined(self, quarantine_id: int) -> QuarantineRecord | None:
        """One quarantined record (the page shows its reason and details, not its payload)."""
        return await self._store.read(lambda tx: get_quarantine(tx, quarantine_id))
