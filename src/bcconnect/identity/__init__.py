"""The patient index: links each source Patient to a person, explains why, and keeps every decision.

Pure parts (normalisation, phonetic keys, comparisons, Fellegi–Sunter with EM, the tiered rules) work on
:class:`Demographics`; the database parts take a store ``Tx`` so links commit with the records they are about.
"""

from bcconnect.identity._blocking import BLOCKING_KEYS, EM_PASSES, block_keys
from bcconnect.identity._compare import FIELDS, compare, jaro_winkler
from bcconnect.identity._db import Link, load_record
from bcconnect.identity._decide import LinkSource, LinkState, PairDecision, decide_pair, explain_pair
from bcconnect.identity._evaluate import GroupQuality, Metrics, Miss, QualityReport, pairwise_metrics, quality_report
from bcconnect.identity._fs import Contribution, Estimate, FieldWeights, FsModel, estimate_model
from bcconnect.identity._golden import CONFLICT_EXTENSION, GOLDEN_TAG, compose_golden, conflicts_of
from bcconnect.identity._linker import LinkOutcome
from bcconnect.identity._match import MatchCandidate, match_patient
from bcconnect.identity._normalise import Demographics, demographics
from bcconnect.identity._persons import (
    GOLDEN_SOURCE,
    RelinkPage,
    accept_review,
    index_size,
    link_patients,
    mark_dirty,
    merge,
    reject_review,
    relink_page,
    settle_persons,
    stable_person_id,
    unmerge,
)
from bcconnect.identity._phonetic import double_metaphone
from bcconnect.identity._rules import DEFAULT_RULES, Rules, format_weights, load_rules
from bcconnect.identity._steward import (
    Comparison,
    Explanation,
    ReviewItem,
    compare_with_person,
    count_links,
    count_reviews,
    evaluate,
    explain,
    find_persons,
    get_review,
    is_person,
    list_reviews,
    person_identifiers,
    person_of,
    person_patients,
    person_redirect,
    persons_of,
    quality,
)

__all__ = [
    "BLOCKING_KEYS",
    "CONFLICT_EXTENSION",
    "DEFAULT_RULES",
    "EM_PASSES",
    "FIELDS",
    "GOLDEN_SOURCE",
    "GOLDEN_TAG",
    "Comparison",
    "Contribution",
    "Demographics",
    "Estimate",
    "Explanation",
    "FieldWeights",
    "FsModel",
    "GroupQuality",
    "Link",
    "LinkOutcome",
    "LinkSource",
    "LinkState",
    "MatchCandidate",
    "Metrics",
    "Miss",
    "PairDecision",
    "QualityReport",
    "RelinkPage",
    "ReviewItem",
    "Rules",
    "accept_review",
    "block_keys",
    "compare",
    "compare_with_person",
    "compose_golden",
    "conflicts_of",
    "count_links",
    "count_reviews",
    "decide_pair",
    "demographics",
    "double_metaphone",
    "estimate_model",
    "evaluate",
    "explain",
    "explain_pair",
    "find_persons",
    "format_weights",
    "get_review",
    "index_size",
    "is_person",
    "jaro_winkler",
    "link_patients",
    "list_reviews",
    "load_record",
    "load_rules",
    "mark_dirty",
    "match_patient",
    "merge",
    "pairwise_metrics",
    "person_identifiers",
    "person_of",
    "person_patients",
    "person_redirect",
    "persons_of",
    "quality",
    "quality_report",
    "reject_review",
    "relink_page",
    "settle_persons",
    "stable_person_id",
    "unmerge",
]
