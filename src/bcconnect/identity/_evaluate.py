"""Evaluation against ground truth (pairwise precision, recall, F1), and an in-memory index for experiments.

Pairwise metrics count pairs of source records: a predicted pair is two records linked (MATCH) to one person,
a true pair two records of one true person. The in-memory index runs the same plan as the database linker
(blocking, tiered rules, person-level plan), so rules and weights can be tuned on a large population quickly.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bcconnect.identity._blocking import block_keys
from bcconnect.identity._normalise import Demographics
from bcconnect.identity._plan import Candidate, LinkPlan, plan_link
from bcconnect.identity._rules import Rules

#: uuid5 namespace of person ids: a person founded by a record has an id derived from that record's id
PERSON_NAMESPACE = uuid.UUID("3d8c1f52-6a0b-5e47-9b2d-71c4e0f8a6d3")
#: candidates looked at per blocking key (most recent first); a huge block says little about anyone
MAX_BLOCK = 200


def new_person_id(patient_id: str) -> str:
    """The id of the person a record founds (deterministic: a re-run founds the same ids)."""
    return str(uuid.uuid5(PERSON_NAMESPACE, patient_id))


@dataclass(frozen=True, slots=True)
class Metrics:
    """Pairwise linkage quality against ground truth, and the size of the review queue."""

    records: int
    true_pairs: int
    predicted_pairs: int
    true_positives: int
    review_queue: int = 0

    @property
    def precision(self) -> float:
        """Share of predicted pairs that are true (1.0 when nothing was predicted)."""
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of true pairs that were predicted (1.0 when there are none)."""
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def review_share(self) -> float:
        """Review queue size as a share of source records."""
        return self.review_queue / self.records if self.records else 0.0

    def summary(self) -> str:
        """One line for reports."""
        return (
            f"records={self.records} true_pairs={self.true_pairs} predicted_pairs={self.predicted_pairs} "
            f"precision={self.precision:.5f} recall={self.recall:.5f} f1={self.f1:.5f} "
            f"review={self.review_queue} ({self.review_share:.3%})"
        )


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def pairwise_metrics(predicted: Mapping[str, str], truth: Mapping[str, str], *, review_queue: int = 0) -> Metrics:
    """Compare a record → predicted person map with a record → true person map (records in both only).

    >>> m = pairwise_metrics({"a": "1", "b": "1", "c": "2"}, {"a": "x", "b": "x", "c": "x"})
    >>> (m.true_pairs, m.predicted_pairs, m.true_positives, round(m.recall, 3))
    (3, 1, 1, 0.333)
    """
    common = [r for r in predicted if r in truth]
    pred = Counter(predicted[r] for r in common)
    true = Counter(truth[r] for r in common)
    both = Counter((predicted[r], truth[r]) for r in common)
    return Metrics(
        records=len(common),
        true_pairs=_pairs(true.values()),
        predicted_pairs=_pairs(pred.values()),
        true_positives=_pairs(both.values()),
        review_queue=review_queue,
    )


class MemoryIndex:
    """The linker's plan over in-memory tables: for evaluation, tuning and benchmarks (not for serving)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.records: dict[str, Demographics] = {}
        self.person_of: dict[str, str] = {}
        self.review: set[str] = set()
        self._blocks: dict[str, list[str]] = {}
        self._mrn: dict[tuple[str | None, str], str] = {}

    def link(self, record: Demographics) -> LinkPlan:
        """Link one record (new or updated) and return the plan that was applied."""
        keys = block_keys(record, self.rules.blocking)
        seen: set[str] = set()
        candidates: list[Candidate] = []
        for key in keys:
            for pid in self._blocks.get(key, ())[-MAX_BLOCK:]:
                if pid not in seen and pid != record.patient_id:
                    seen.add(pid)
                    candidates.append(Candidate(self.records[pid], self.person_of[pid]))
        plan = plan_link(record, candidates, self.rules)
        same_record = self._mrn.get((record.ods_code, record.mrn)) if record.mrn else None
        if same_record is not None and same_record != record.patient_id:
            person = self.person_of[same_record]
        elif plan.match is not None:
            person = plan.match.person_id
        else:
            person = self.person_of.get(record.patient_id) or new_person_id(record.patient_id)
        if record.patient_id not in self.records:
            for key in keys:
                self._blocks.setdefault(key, []).append(record.patient_id)
        self.records[record.patient_id] = record
        self.person_of[record.patient_id] = person
        if record.mrn:
            self._mrn.setdefault((record.ods_code, record.mrn), record.patient_id)
        if plan.possible or plan.duplicates:
            self.review.add(record.patient_id)
        return plan
