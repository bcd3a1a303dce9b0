"""Evaluation against ground truth (pairwise precision, recall, F1), and an in-memory index for experiments.

Pairwise metrics count pairs of source records: a predicted pair is two records linked (MATCH) to one person,
a true pair two records of one true person. The in-memory index runs the same plan as the database linker
(blocking, tiered rules, person-level plan), so rules and weights can be tuned on a large population quickly.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from bcconnect.identity._blocking import block_keys
from bcconnect.identity._decide import JOIN_BLOCKERS, decide_pair
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
        self._members: dict[str, set[str]] = {}
        #: absorbed person → the person it was joined into (re-clustering, as the store linker does)
        self.joined: dict[str, str] = {}

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
        previous = self.person_of.get(record.patient_id)
        if previous is not None and previous != person:
            self._members.get(previous, set()).discard(record.patient_id)
        self.person_of[record.patient_id] = person
        self._members.setdefault(person, set()).add(record.patient_id)
        if record.mrn:
            self._mrn.setdefault((record.ods_code, record.mrn), record.patient_id)
        unjoined = list(plan.duplicates)
        if plan.match is not None and plan.match.person_id == person and not plan.match.decision.weak:
            unjoined = [d for d in plan.duplicates if d.decision.weak or not self._join(person, d.person_id)]
        if plan.possible or unjoined:
            self.review.add(record.patient_id)
        return plan

    def _join(self, into: str, other: str) -> bool:
        """Join person ``other`` into ``into`` unless a veto or a guard forbids it (as the store linker)."""
        moving = [self.records[p] for p in self._members.get(other, ())]
        staying = [self.records[p] for p in self._members.get(into, ())]
        if not moving or len({r.nhs_number for r in (*moving, *staying) if r.nhs_verified}) > 1:
            return False
        if any(decide_pair(a, b, self.rules).rule in JOIN_BLOCKERS for a in moving for b in staying):
            return False
        for r in moving:
            self.person_of[r.patient_id] = into
        self._members[into] |= self._members.pop(other)
        self.joined[other] = into
        return True


@dataclass(frozen=True, slots=True)
class GroupQuality:
    """Pairwise quality of the pairs that touch one group of records (a noise category, or a rule)."""

    name: str
    records: int
    true_pairs: int
    found_pairs: int
    predicted_pairs: int
    correct_pairs: int
    review_records: int

    @property
    def precision(self) -> float:
        """Share of linked pairs touching the group that are true (1.0 when none)."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of true pairs touching the group that are linked (1.0 when none)."""
        return self.found_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def review_share(self) -> float:
        """Share of the group's records with an open review item."""
        return self.review_records / self.records if self.records else 0.0


@dataclass(frozen=True, slots=True)
class Miss:
    """One pair the index got wrong: a ``split`` (one true person, two persons) or a ``merge`` (the reverse).

    ``rule`` is the pair decision between the two records (why a split was not linked) or the rule that
    linked the later record of a merged pair; ``noise`` the categories the two records carry.
    """

    kind: str
    left: str
    right: str
    rule: str
    score: float | None
    noise: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Overall metrics, quality per noise category and per rule, and the misses behind them."""

    overall: Metrics
    categories: tuple[GroupQuality, ...]
    rules: tuple[GroupQuality, ...]
    splits: tuple[Miss, ...]
    merges: tuple[Miss, ...]
    twins_merged: int

    def lines(self, *, examples: int = 3) -> list[str]:
        """The report as text: overall, a table per noise category and per rule, then example misses."""
        m = self.overall
        out = [
            f"records {m.records}, true pairs {m.true_pairs}, linked pairs {m.predicted_pairs}, "
            f"correct {m.true_positives}",
            f"precision {m.precision:.5f}  recall {m.recall:.5f}  F1 {m.f1:.5f}  "
            f"review {m.review_queue} record(s) ({m.review_share:.3%})  twins merged {self.twins_merged}",
            "",
            f"{'noise category':<24} {'records':>8} {'true':>7} {'recall':>8} {'linked':>7} {'precision':>9} "
            f"{'review':>7}",
        ]
        for g in self.categories:
            out.append(f"{g.name:<24} {g.records:>8} {g.true_pairs:>7} {g.recall:>8.4f} {g.predicted_pairs:>7} "
                       f"{g.precision:>9.5f} {g.review_share:>7.2%}")  # fmt: skip
        out += ["", f"{'rule':<34} {'records':>8} {'linked':>7} {'precision':>9} {'split':>6} {'review':>7}"]
        for g in self.rules:
            out.append(f"{g.name:<34} {g.records:>8} {g.predicted_pairs:>7} {g.precision:>9.5f} "
                       f"{g.true_pairs:>6} {g.review_share:>7.2%}")  # fmt: skip
        for title, misses in (("splits", self.splits), ("merges", self.merges)):
            out += ["", f"{title}: {len(misses)} pair(s)"]
            by_rule: dict[str, list[Miss]] = {}
            for miss in misses:
                by_rule.setdefault(miss.rule, []).append(miss)
            for rule, items in sorted(by_rule.items(), key=lambda kv: -len(kv[1])):
                out.append(f"  {rule}: {len(items)}")
                for miss in items[:examples]:
                    score = "" if miss.score is None else f" score {miss.score:.1f}"
                    out.append(f"    Patient/{miss.left} ~ Patient/{miss.right}{score} [{', '.join(miss.noise)}]")
        return out


CLEAN: Final = "clean"


def _cluster_pairs(groups: Mapping[str, list[str]]) -> Iterator[tuple[str, str]]:
    for members in groups.values():
        ordered = sorted(members)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                yield a, b


def quality_report(
    predicted: Mapping[str, str],
    truth: Mapping[str, str],
    *,
    noise: Mapping[str, tuple[str, ...]],
    link_rule: Mapping[str, str],
    review: Iterable[str],
    explain: Callable[[str, str], tuple[str, float | None]] | None = None,
) -> QualityReport:
    """Quality of a record → person map against the truth, per noise category and per rule.

    A pair counts for a category when either record carries it (records with none count as ``clean``); a
    linked pair counts for the rule that linked either record. ``explain(a, b)`` gives the pair decision's
    rule and score behind a split (omitted: the split is listed without one).
    """
    common = [r for r in predicted if r in truth]
    reviewed = {r for r in review if r in truth}
    by_true: dict[str, list[str]] = {}
    by_pred: dict[str, list[str]] = {}
    for r in common:
        by_true.setdefault(truth[r], []).append(r)
        by_pred.setdefault(predicted[r], []).append(r)

    def cats(r: str) -> tuple[str, ...]:
        return noise.get(r) or (CLEAN,)

    counts: dict[str, Counter[str]] = {}
    rule_counts: dict[str, Counter[str]] = {}

    def bump(table: dict[str, Counter[str]], keys: Iterable[str], what: str) -> None:
        for key in set(keys):
            table.setdefault(key, Counter())[what] += 1

    for r in common:
        bump(counts, cats(r), "records")
        bump(rule_counts, (link_rule.get(r, "?"),), "records")
        if r in reviewed:
            bump(counts, cats(r), "review")
            bump(rule_counts, (link_rule.get(r, "?"),), "review")
    splits: list[Miss] = []
    merges: list[Miss] = []
    for a, b in _cluster_pairs(by_true):
        found = predicted[a] == predicted[b]
        bump(counts, (*cats(a), *cats(b)), "true")
        if found:
            bump(counts, (*cats(a), *cats(b)), "found")
        else:
            rule, score = explain(a, b) if explain else ("?", None)
            splits.append(Miss("split", a, b, rule, score, tuple(dict.fromkeys((*cats(a), *cats(b))))))
    twins = 0
    for a, b in _cluster_pairs(by_pred):
        correct = truth[a] == truth[b]
        rules_of_pair = (link_rule.get(a, "?"), link_rule.get(b, "?"))
        bump(counts, (*cats(a), *cats(b)), "predicted")
        bump(rule_counts, rules_of_pair, "predicted")
        if correct:
            bump(counts, (*cats(a), *cats(b)), "correct")
            bump(rule_counts, rules_of_pair, "correct")
        else:
            both = tuple(dict.fromkeys((*cats(a), *cats(b))))
            twins += "twin" in both
            rule = next((x for x in rules_of_pair if x != "new-person"), rules_of_pair[0])
            merges.append(Miss("merge", a, b, rule, None, both))
    for split in splits:
        bump(rule_counts, (f"split by {split.rule}",), "true")

    def group(name: str, c: Counter[str]) -> GroupQuality:
        return GroupQuality(name, c["records"], c["true"], c["found"], c["predicted"], c["correct"], c["review"])

    overall = pairwise_metrics(predicted, truth, review_queue=len(reviewed))
    return QualityReport(
        overall=overall,
        categories=tuple(group(k, v) for k, v in sorted(counts.items())),
        rules=tuple(group(k, v) for k, v in sorted(rule_counts.items())),
        splits=tuple(splits),
        merges=tuple(merges),
        twins_merged=twins,
    )
