"""Process-local Prometheus metrics: what happens in this process, counted as it happens.

A leaf like :mod:`bcconnect.logging`: any package may count an event here; nothing here reads the store.
Facts that live in the store (quarantine depth, review queue, audit chain head, freshness, store size) are
collected at scrape time by :mod:`bcconnect.ops` instead, so every process reports the same numbers for them.

Names follow the Prometheus conventions: ``bcconnect_`` prefix, base units (seconds, bytes), ``_total`` on
counters, labels of small fixed cardinality (interaction, status class, adapter, outcome — never a patient
or a user).

When the API runs in several processes (``bcconnect serve --workers N``), ``PROMETHEUS_MULTIPROC_DIR`` is set
before any worker starts and prometheus-client's multiprocess mode sums the workers' files at scrape time.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

#: request latency buckets (seconds): a FHIR read is ~1 ms, a large $everything up to seconds
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS: Final = Counter(
    "bcconnect_http_requests_total",
    "FHIR API requests answered, by interaction and HTTP status code",
    ["interaction", "status"],
)
HTTP_REQUEST_DURATION: Final = Histogram(
    "bcconnect_http_request_duration_seconds",
    "FHIR API request latency from the first byte read to the last byte written, by interaction and status",
    ["interaction", "status"],
    buckets=LATENCY_BUCKETS,
)
RATE_LIMITED: Final = Counter(
    "bcconnect_rate_limited_requests_total",
    "Requests refused with 429, by which limit refused them (user, client or address)",
    ["limit"],
)
RATE_LIMIT_RATE: Final = Gauge(
    "bcconnect_rate_limit_requests_per_second",
    "Configured sustained rate of each limit (user, client, address)",
    ["limit"],
    multiprocess_mode="max",
)
RATE_LIMIT_BURST: Final = Gauge(
    "bcconnect_rate_limit_burst_requests",
    "Configured burst of each limit (user, client, address)",
    ["limit"],
    multiprocess_mode="max",
)
INGEST_RECORDS: Final = Counter(
    "bcconnect_ingest_records_total",
    "Source records committed by this process, by adapter and outcome (new, changed, unchanged, quarantined)",
    ["adapter", "outcome"],
)
INGEST_PAGES: Final = Counter(
    "bcconnect_ingest_pages_total",
    "Source pages committed by this process, by adapter",
    ["adapter"],
)
INGEST_SYNCS: Final = Counter(
    "bcconnect_ingest_syncs_total",
    "Sync runs finished by this process, by adapter and result (ok, degraded or failed)",
    ["adapter", "result"],
)
BREAKER_STATE: Final = Gauge(
    "bcconnect_adapter_breaker_state",
    "Circuit breaker state per adapter in this process: 1 for the current state, 0 for the others",
    ["adapter", "state"],
    multiprocess_mode="max",
)

#: the breaker states, in the order the gauge reports them
BREAKER_STATES: Final = ("closed", "half_open", "open")


def set_breaker_state(adapter: str, state: str) -> None:
    """Record that ``adapter``'s breaker is now in ``state`` (one of :data:`BREAKER_STATES`)."""
    for name in BREAKER_STATES:
        BREAKER_STATE.labels(adapter=adapter, state=name).set(1 if name == state else 0)
