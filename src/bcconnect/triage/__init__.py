"""Referral triage and the shared waiting list across the four trusts (read-only, through the view).

::

    triage = Triage(view)                                      # networks.toml from the package (or your own)
    items = await triage.worklist(access, "ENT")               # awaiting triage: 2WW, urgent, routine; context
    rows = await triage.waiting_list(access, tfc="120", min_weeks=40, pidmas_eligible=True)
    summary = await triage.summary(access)                     # per trust and TFC: size, median, p92, 18 weeks
    offers = await triage.mutual_aid(access)                   # PIDMAS-eligible, with shorter-wait providers
    page, after = await triage.worklist_page(access, "ENT", limit=50)   # keyset pages (after=… for the next)
    await triage.model.rebuild()                               # the read model again from the store

The worklist, the summary and mutual aid read a **read model** (:class:`ReadModel`, triage's own tables) kept
current from the store's change feed before each answer, and screen it for the caller when they read: a
worklist page's referrals are read through the view; the summary's and mutual aid's counts leave out, or
recompute, every pathway with a part the caller's screen withholds.

The RTT clock (:func:`run_clock`) follows the NHS rules: start at receipt, stop at first definitive treatment
or a non-treatment decision, nullified by a routine/urgent first-appointment DNA, continuing through an
inter-provider transfer with the same Patient Pathway Identifier. Networks, context code lists, flags and
routing (pairings, head and neck cancer to Wolverhampton) are configuration (:func:`load_triage_config`).
"""

from bcconnect.triage._config import (
    Flag,
    Network,
    Pairing,
    Route,
    Systems,
    TriageConfig,
    load_triage_config,
    parse_triage_config,
)
from bcconnect.triage._context import Fact, PersonContext, build_context, person_name
from bcconnect.triage._model import FOLLOWED, ReadModel, model_snapshot, screen_check
from bcconnect.triage._records import Appointment, Pathway, Referral, display, parse_day, trusts_of
from bcconnect.triage._rtt import Clock, ClockEvent, ClockState, merge_events, run_clock
from bcconnect.triage._service import (
    LONG_WAIT_WEEKS,
    PRIORITY_LABEL,
    TRIAGE_READS,
    Alternative,
    CancerPerformance,
    MutualAid,
    PathwayRow,
    Triage,
    WaitSummary,
    WorklistCursor,
    WorklistItem,
    cancer_performance,
    percentile,
    summarise,
    summarise_histogram,
    today,
)

__all__ = [
    "FOLLOWED",
    "LONG_WAIT_WEEKS",
    "PRIORITY_LABEL",
    "TRIAGE_READS",
    "Alternative",
    "Appointment",
    "CancerPerformance",
    "Clock",
    "ClockEvent",
    "ClockState",
    "Fact",
    "Flag",
    "MutualAid",
    "Network",
    "Pairing",
    "Pathway",
    "PathwayRow",
    "PersonContext",
    "ReadModel",
    "Referral",
    "Route",
    "Systems",
    "Triage",
    "TriageConfig",
    "WaitSummary",
    "WorklistCursor",
    "WorklistItem",
    "build_context",
    "cancer_performance",
    "display",
    "load_triage_config",
    "merge_events",
    "model_snapshot",
    "parse_day",
    "parse_triage_config",
    "percentile",
    "person_name",
    "run_clock",
    "screen_check",
    "summarise",
    "summarise_histogram",
    "today",
    "trusts_of",
]
