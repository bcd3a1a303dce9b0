"""Metrics read from the store at scrape time: the same numbers whichever process (or worker) is scraped.

One read transaction gathers a :class:`StoreFacts` snapshot; :func:`store_metric_families` turns it into
Prometheus metric families. Counters here are sums over the run history, so they survive restarts and count
the work of every ingest worker sharing the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bcconnect.identity import count_links, count_reviews
from bcconnect.ingest import RunSummary, RunTotals, run_totals, summarise, watermark_of
from bcconnect.security import audit_chain_head, audit_chains, count_audit_events, default_partition_events
from bcconnect.store import PoolStats, SourceFreshness, Store, Tx, database_size_bytes, source_freshness

#: a scrape gives up on the store after this long (Prometheus' default scrape timeout is 10 s)
SCRAPE_TIMEOUT_SECONDS = 5.0
#: staleness limit assumed for a source with no adapter configuration (one hour, as adapter.toml's default)
DEFAULT_STALENESS_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class AdapterFacts:
    """What the store says about one adapter."""

    name: str
    summary: RunSummary
    freshness: SourceFreshness | None
    #: seconds between now and the newest source timestamp the cursor has reached (None: not a time cursor)
    lag_seconds: float | None


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """Everything /metrics reports from the store, read in one transaction."""

    adapters: tuple[AdapterFacts, ...]
    totals: tuple[RunTotals, ...]
    links: Mapping[tuple[str, str], int]
    open_reviews: int
    audit_head_seq: int
    audit_events: int
    size_bytes: int
    #: audit chains (writer segments) open and closed, and the events that landed in the default partition
    audit_segments: Mapping[str, int] = field(default_factory=dict)
    audit_default_partition_events: int = 0
    pool: PoolStats | None = None
    extra: tuple[Metric, ...] = field(default=())


def _age(instant: str | None, now: datetime) -> float | None:
    if not instant or len(instant) < 19 or instant[4:5] != "-":
        return None
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def read_store_facts(
    tx: Tx,
    *,
    ods_codes: Mapping[str, str],
    staleness_limits: Mapping[str, float],
    now: datetime | None = None,
) -> StoreFacts:
    """The snapshot, in one read transaction (configured adapters and any that have run)."""
    now = now or datetime.now(UTC)
    totals = tuple(run_totals(tx))
    freshness = {
        f.source: f
        for f in source_freshness(
            tx, ods_codes=ods_codes, limits=staleness_limits, default_limit=DEFAULT_STALENESS_SECONDS, now=now
        )
    }
    names = sorted(set(ods_codes) | {t.adapter for t in totals} | set(freshness))
    adapters = []
    for name in names:
        summary = summarise(tx, name)
        adapters.append(AdapterFacts(name, summary, freshness.get(name), _age(watermark_of(summary.cursor), now)))
    seq = audit_chain_head(tx).seq
    chains = audit_chains(tx)
    in_default = default_partition_events(tx)
    return StoreFacts(
        adapters=tuple(adapters),
        totals=totals,
        links=count_links(tx),
        open_reviews=count_reviews(tx),
        audit_head_seq=seq,
        audit_events=count_audit_events(tx),
        audit_segments={
            "open": sum(1 for c in chains if not c.closed),
            "closed": sum(1 for c in chains if c.closed),
        },
        audit_default_partition_events=in_default,
        size_bytes=database_size_bytes(tx),
    )


async def gather_store_facts(
    store: Store, *, ods_codes: Mapping[str, str], staleness_limits: Mapping[str, float]
) -> StoreFacts:
    """Read the snapshot and add the store's connection use."""
    facts = await store.read_within(
        lambda tx: read_store_facts(tx, ods_codes=ods_codes, staleness_limits=staleness_limits),
        within_seconds=SCRAPE_TIMEOUT_SECONDS,
    )
    return replace(facts, pool=store.pool_stats())


def store_metric_families(facts: StoreFacts) -> list[Metric]:
    """The snapshot as Prometheus metric families (names: ``bcconnect_`` + what + unit)."""
    records = CounterMetricFamily(
        "bcconnect_adapter_records",
        "Source records processed by finished sync runs (every worker), by adapter and outcome",
        labels=["adapter", "outcome"],
    )
    runs = CounterMetricFamily(
        "bcconnect_adapter_sync_runs",
        "Finished sync runs (every worker), by adapter and result",
        labels=["adapter", "result"],
    )
    for t in facts.totals:
        for outcome, value in (
            ("new", t.new),
            ("changed", t.changed),
            ("unchanged", t.unchanged),
            ("quarantined", t.quarantined),
            ("deleted", t.deleted),
        ):
            records.add_metric([t.adapter, outcome], value)
        runs.add_metric([t.adapter, "ok"], t.runs_ok)
        runs.add_metric([t.adapter, "failed"], t.runs_failed)
    quarantine = GaugeMetricFamily(
        "bcconnect_adapter_quarantine_depth", "Open (unresolved) quarantined records, by adapter", labels=["adapter"]
    )
    freshness = GaugeMetricFamily(
        "bcconnect_adapter_freshness_seconds",
        "Seconds since the adapter last committed a page (its data is this old at most)",
        labels=["adapter"],
    )
    stale = GaugeMetricFamily(
        "bcconnect_adapter_stale", "1 when the adapter is past its staleness limit or never synced", labels=["adapter"]
    )
    lag = GaugeMetricFamily(
        "bcconnect_adapter_lag_seconds",
        "Seconds between now and the newest source change the adapter's cursor has reached",
        labels=["adapter"],
    )
    last_success = GaugeMetricFamily(
        "bcconnect_adapter_last_success_timestamp_seconds",
        "Unix time of the adapter's last sync run that finished without error",
        labels=["adapter"],
    )
    held = GaugeMetricFamily(
        "bcconnect_adapter_held_resources",
        "Clinical resources held back until their Patient arrives, by adapter",
        labels=["adapter"],
    )
    error_ratio = GaugeMetricFamily(
        "bcconnect_adapter_error_ratio", "Share of the adapter's recent sync runs that failed", labels=["adapter"]
    )
    for a in facts.adapters:
        quarantine.add_metric([a.name], a.summary.quarantine_depth)
        held.add_metric([a.name], a.summary.held)
        error_ratio.add_metric([a.name], a.summary.error_rate)
        if a.freshness is not None:
            stale.add_metric([a.name], 1.0 if a.freshness.stale else 0.0)
            if a.freshness.age_seconds is not None:
                freshness.add_metric([a.name], a.freshness.age_seconds)
        if a.lag_seconds is not None:
            lag.add_metric([a.name], a.lag_seconds)
        success = _timestamp(a.summary.last_success)
        if success is not None:
            last_success.add_metric([a.name], success)
    links = GaugeMetricFamily(
        "bcconnect_identity_links",
        "Current identity links, by the rule that made them and their state",
        labels=["rule", "state"],
    )
    for (rule, state), count in sorted(facts.links.items()):
        links.add_metric([rule, state], count)
    reviews = GaugeMetricFamily("bcconnect_identity_review_queue_depth", "Open identity review items")
    reviews.add_metric([], facts.open_reviews)
    head = GaugeMetricFamily("bcconnect_audit_chain_head_sequence", "Sequence number of the newest audit chain link")
    head.add_metric([], facts.audit_head_seq)
    audit_events = GaugeMetricFamily("bcconnect_audit_events", "AuditEvents held in the store")
    audit_events.add_metric([], facts.audit_events)
    segments = GaugeMetricFamily(
        "bcconnect_audit_segments", "Audit chains (one per writer segment) by state", labels=["state"]
    )
    for state, count in sorted(facts.audit_segments.items()):
        segments.add_metric([state], count)
    in_default = GaugeMetricFamily(
        "bcconnect_audit_default_partition_events",
        "AuditEvents in the default partition (a month without its own partition; run bcconnect audit maintain)",
    )
    in_default.add_metric([], facts.audit_default_partition_events)
    size = GaugeMetricFamily("bcconnect_store_size_bytes", "Size of the database on disk")
    size.add_metric([], facts.size_bytes)
    families: list[Metric] = [
        records, runs, quarantine, held, freshness, stale, lag, last_success, error_ratio,
        links, reviews, head, audit_events, segments, in_default, size,
    ]  # fmt: skip
    if facts.pool is not None:
        in_use = GaugeMetricFamily(
            "bcconnect_store_connections_in_use", "Store transactions running now in this process", labels=["kind"]
        )
        limit = GaugeMetricFamily(
            "bcconnect_store_connections_max", "Store transactions this process may run at once", labels=["kind"]
        )
        in_use.add_metric(["read"], facts.pool.reads_in_use)
        in_use.add_metric(["write"], facts.pool.writes_in_use)
        limit.add_metric(["read"], facts.pool.reads_max)
        limit.add_metric(["write"], facts.pool.writes_max)
        families += [in_use, limit]
    families.extend(facts.extra)
    return families


def _timestamp(instant: str | None) -> float | None:
    if not instant:
        return None
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class FamiliesCollector(Collector):
    """A collector that yields metric families gathered beforehand (store reads are async; collect is not)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families
