"""Population cohorts over the person-centred view, honouring the national data opt-out and objections.

Public reads (stable: the bulk export codes against them)::

    ids = await cohort_member_person_ids(view, "ltc-3plus")   # golden Patient ids, or None: no such cohort
    group = await cohort_group(view, "ltc-3plus")              # the FHIR Group (JSON object), or None
    groups = await cohort_groups(view)                          # every cohort, without members

Members are always read minus anyone now under the national data opt-out (type 1 or 2) or in the objection
register, even if they opted out after the cohort was computed; the Group reports how many were removed
(a count per reason, never who). Computation reads clinical data only through :mod:`bcconnect.view` — what
changed since the last computation, into the package's facts read model (``cohort_fact_*``, see
:class:`CohortFacts`), over which the definitions are evaluated in SQL; the package's own tables
(``cohort_runs``, ``cohort_members``, ``cohort_opt_out``) hold the results.
"""

from bcconnect.cohorts._compute import COHORT_READS, Cohorts, Evaluator, FactCollector, PersonFacts
from bcconnect.cohorts._definitions import (
    BOROUGHS,
    CohortDefinition,
    Definitions,
    Rule,
    borough_of,
    load_definitions,
    load_places,
    parse_definitions,
)
from bcconnect.cohorts._extract import distinct_starts, months_before, parse_instant
from bcconnect.cohorts._facts import CohortFacts, RefreshReport
from bcconnect.cohorts._group import (
    COHORT_IDENTIFIER_SYSTEM,
    COMPUTED_EXTENSION,
    DEFINITION_EXTENSION,
    REMOVED_EXTENSION,
    cohort_group,
    cohort_groups,
    cohort_member_person_ids,
    cohort_runs,
    current_cohort_members,
    group_resource,
    member_person_ids,
)
from bcconnect.cohorts._schedule import due_in_seconds, run_schedule
from bcconnect.cohorts._tables import CohortRun, Member

__all__ = [
    "BOROUGHS",
    "COHORT_IDENTIFIER_SYSTEM",
    "COHORT_READS",
    "COMPUTED_EXTENSION",
    "DEFINITION_EXTENSION",
    "REMOVED_EXTENSION",
    "CohortDefinition",
    "CohortFacts",
    "CohortRun",
    "Cohorts",
    "Definitions",
    "Evaluator",
    "FactCollector",
    "Member",
    "PersonFacts",
    "RefreshReport",
    "Rule",
    "borough_of",
    "cohort_group",
    "cohort_groups",
    "cohort_member_person_ids",
    "cohort_runs",
    "current_cohort_members",
    "distinct_starts",
    "due_in_seconds",
    "group_resource",
    "load_definitions",
    "load_places",
    "member_person_ids",
    "months_before",
    "parse_definitions",
    "parse_instant",
    "run_schedule",
]
