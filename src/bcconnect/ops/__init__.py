"""Operations: request ids, health and readiness probes, Prometheus metrics gathered from the store.

::

    checks = readiness_checks(store, keys_ready=gate.authenticator.keys_ready)
    scrape = store_scrape(store, ods_codes=..., staleness_limits=...)
    app = OpsApp(create_app(settings, view, ...), metrics_settings=settings.metrics, checks=checks, scrape=scrape)

``/healthz`` (alive), ``/readyz`` (store, migrations, keys) and ``/metrics`` are answered here, before the FHIR
app, unauthenticated and unaudited; ``/metrics`` only for clients in ``[metrics] allow_networks``. Process-local
counters live in :mod:`bcconnect.metrics`; facts held in the store are read at scrape time
(:func:`store_metric_families`), so every API process reports the same store-wide numbers.
"""

# the records the operations page shows, named here so pages (which may import ops, not identity, ingest or
# store) can annotate with them
from bcconnect.identity import ReviewItem
from bcconnect.ingest import FailedRun
from bcconnect.ops._asgi import (
    OBSERVED_KEY,
    REQUEST_ID_HEADER,
    OpsApp,
    ReadinessCheck,
    Scrape,
    process_exposition,
    request_id_from,
)
from bcconnect.ops._collect import (
    AdapterFacts,
    FamiliesCollector,
    StoreFacts,
    gather_store_facts,
    read_store_facts,
    store_metric_families,
)
from bcconnect.ops._health import readiness_checks, replica_check, replica_scrape, store_scrape
from bcconnect.ops._overview import OpsOverview, OpsService
from bcconnect.store import QuarantineGroup, QuarantineRecord

__all__ = [
    "OBSERVED_KEY",
    "REQUEST_ID_HEADER",
    "AdapterFacts",
    "FailedRun",
    "FamiliesCollector",
    "OpsApp",
    "OpsOverview",
    "OpsService",
    "QuarantineGroup",
    "QuarantineRecord",
    "ReadinessCheck",
    "ReviewItem",
    "Scrape",
    "StoreFacts",
    "gather_store_facts",
    "process_exposition",
    "read_store_facts",
    "readiness_checks",
    "replica_check",
    "replica_scrape",
    "request_id_from",
    "store_metric_families",
    "store_scrape",
]
