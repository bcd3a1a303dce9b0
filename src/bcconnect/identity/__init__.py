"""The patient index: links each source Patient to a person, explains why, and keeps every decision.

Pure parts (normalisation, phonetic keys, comparisons, Fellegi–Sunter with EM, the tiered rules) work on
:class:`Demographics`; the database parts take a store ``Tx`` so links commit with the records they are about.
"""

from bcconnect.identity._blocking import BLOCKING_KEYS, EM_PASSES, block_keys
from bcconnect.identity._compare import FIELDS, compare, jaro_winkler
from bcconnect.identity._decide import LinkSource, LinkState, PairDecision, decide_pair, explain_pair
from bcconnect.identity._fs import Contribution, Estimate, FieldWeights, FsModel, estimate_model
from bcconnect.identity._normalise import Demographics, demographics
from bcconnect.identity._phonetic import double_metaphone
from bcconnect.identity._rules import DEFAULT_RULES, Rules, format_weights, load_rules

__all__ = [
    "BLOCKING_KEYS",
    "DEFAULT_RULES",
    "EM_PASSES",
    "FIELDS",
    "Contribution",
    "Demographics",
    "Estimate",
    "FieldWeights",
    "FsModel",
    "LinkSource",
    "LinkState",
    "PairDecision",
    "Rules",
    "block_keys",
    "compare",
    "decide_pair",
    "demographics",
    "double_metaphone",
    "estimate_model",
    "explain_pair",
    "format_weights",
    "jaro_winkler",
    "load_rules",
]
