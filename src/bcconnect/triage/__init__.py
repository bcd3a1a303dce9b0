"""Referral triage and the shared waiting list across the four trusts (read-only, through the view).

::

    triage = Triage(view)                                      # networks.toml from the package (or your own)
    items = await triage.worklist(access, "ENT")               # awaiting triage: 2WW, urgent, routine; context
    rows = await triage.waiting_list(access, tfc="120", min_weeks=40, pidmas_eligible=True)
    summary = await triage.summary(access)                     # per trust and TFC: size, median, p92, 18 weeks
    offers = await triage.mutual_aid(access)                   # PIDMAS-eligible, with shorter-wait providers

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
from bcconnect.triage._context import Fact, PersonContext, build_context
from bcconnect.triage._records import Appointment, Pathway, Referral
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
    WorklistItem,
    cancer_performance,
    percentile,
    summarise,
    today,
)

__all__ = [
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
    "Referral",
    "Route",
    "Systems",
    "Triage",
    "TriageConfig",
    "WaitSummary",
    "WorklistItem",
    "build_context",
    "cancer_performance",
    "load_triage_config",
    "merge_events",
    "parse_triage_config",
    "percentile",
    "run_clock",
    "summarise",
    "today",
]
