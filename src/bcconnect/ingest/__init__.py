"""The ingest pipeline: adapters → raw landing → mapping → validation → identity → store.

::

    reports = await sync_adapters(configs, settings=settings, store=store)  # one pass of every adapter
    assert all(r.balanced for r in reports)  # fetched = new + changed + unchanged + quarantined

Each page is committed in one transaction together with its cursor (see ``_commit``).
"""

from bcconnect.ingest._daemon import mllp_sink, run_daemon
from bcconnect.ingest._held import HeldResource, count_held, held_by_type, list_held
from bcconnect.ingest._leases import Lease, acquire_lease, list_leases, release_lease, worker_identity
from bcconnect.ingest._replay import (
    RemapReport,
    ReplayAllReport,
    ReplayResult,
    remap_adapter,
    replay_all,
    replay_quarantined,
)
from bcconnect.ingest._report import PageCounts, SyncReport
from bcconnect.ingest._runs import (
    FailedRun,
    RunSummary,
    RunTotals,
    recent_failed_runs,
    run_totals,
    summarise,
    watermark_of,
)
from bcconnect.ingest._sweep import SweepReport, sweep_deletes
from bcconnect.ingest._sync import process_page, resolve_adapter, sync_adapter, sync_adapters

__all__ = [
    "FailedRun",
    "HeldResource",
    "Lease",
    "PageCounts",
    "RemapReport",
    "ReplayAllReport",
    "ReplayResult",
    "RunSummary",
    "RunTotals",
    "SweepReport",
    "SyncReport",
    "acquire_lease",
    "count_held",
    "held_by_type",
    "list_held",
    "list_leases",
    "mllp_sink",
    "process_page",
    "recent_failed_runs",
    "release_lease",
    "remap_adapter",
    "replay_all",
    "replay_quarantined",
    "resolve_adapter",
    "run_daemon",
    "run_totals",
    "summarise",
    "sweep_deletes",
    "sync_adapter",
    "sync_adapters",
    "watermark_of",
    "worker_identity",
]
