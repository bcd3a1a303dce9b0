"""Fellegi–Sunter scoring and the EM estimation of its m and u probabilities.

``m[f][l]`` is the probability that field ``f`` of a *matching* pair falls into level ``l``, ``u[f][l]`` the
same for a non-matching pair. A pair's score is the sum over its non-null fields of ``log2(m / u)``: positive
evidence for a match, negative against. u comes from random pairs (almost all of them non-matches); m is learnt
with expectation–maximisation over blocked candidate pairs, as splink does: a field's m is taken from a
blocking pass that does not block on that field, so the blocking does not bias it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bcconnect.identity._compare import FIELDS, NULL, Vector, compare
from bcconnect.identity._normalise import Demographics

#: floor for an estimated probability: keeps every weight finite
_FLOOR = 1e-6
#: floor for m: no single disagreeing field may veto a pair on its own (about -13 bits at most)
_M_FLOOR = 1e-4


@dataclass(frozen=True, slots=True)
class FieldWeights:
    """The m and u probabilities of one field's levels (same order as the field's levels)."""

    name: str
    levels: tuple[str, ...]
    m: tuple[float, ...]
    u: tuple[float, ...]

    def weight(self, level: int) -> float:
        """``log2(m/u)`` of a level; 0 for a null comparison (no evidence)."""
        if level == NULL:
            return 0.0
        return math.log2(max(self.m[level], _FLOOR) / max(self.u[level], _FLOOR))


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one field added to a pair's score, for explanations."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True, slots=True)
class FsModel:
    """A Fellegi–Sunter model: one :class:`FieldWeights` per compared field, in :data:`FIELDS` order."""

    fields: tuple[FieldWeights, ...]
    #: share of matches among blocked candidate pairs when the weights were estimated
    prior: float = 0.5
    _table: tuple[tuple[float, ...], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # weights precomputed per level: scoring is a sum of lookups (online decisions must be fast)
        table = tuple(tuple(f.weight(i) for i in range(len(f.levels))) for f in self.fields)
        object.__setattr__(self, "_table", table)

    def score(self, vector: Vector) -> float:
        """The match weight (bits) of a comparison vector."""
        return sum(self._table[i][lvl] for i, lvl in enumerate(vector) if lvl != NULL)

    def explain(self, vector: Vector) -> tuple[Contribution, ...]:
        """Each field's level and weight for a comparison vector."""
        return tuple(
            Contribution(
                f.name, "missing" if lvl == NULL else f.levels[lvl], self._table[i][lvl] if lvl != NULL else 0.0
            )
            for i, (f, lvl) in enumerate(zip(self.fields, vector, strict=True))
        )


def _frequencies(
    vectors: Counter[Vector], index: int, size: int, weights: Callable[[Vector], float], *, smoothing: float = 0.0
) -> list[float]:
    totals = [smoothing] * size
    for vector, count in vectors.items():
        level = vector[index]
        if level != NULL:
            totals[level] += count * weights(vector)
    whole = sum(totals)
    if whole <= 0:
        return [1.0 / size] * size
    return [max(t / whole, _FLOOR) for t in totals]


def estimate_u(pairs: Iterable[tuple[Demographics, Demographics]]) -> list[list[float]]:
    """u probabilities from random pairs: the level frequencies among (almost surely) non-matching pairs."""
    vectors = Counter(compare(a, b) for a, b in pairs)
    # half a pair of pseudo-count per level: a level no random pair fell into is rare, not impossible
    return [_frequencies(vectors, i, len(f.levels), lambda _v: 1.0, smoothing=0.5) for i, f in enumerate(FIELDS)]


@dataclass(frozen=True, slots=True)
class EmResult:
    """The outcome of one EM run: m per field, the match share, iterations used and whether it converged."""

    m: list[list[float]]
    prior: float
    iterations: int
    converged: bool


def expectation_maximisation(
    vectors: Counter[Vector],
    u: Sequence[Sequence[float]],
    *,
    prior: float = 0.1,
    ignore: frozenset[str] = frozenset(),
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> EmResult:
    """Learn m (and the match share) from comparison vectors of candidate pairs, u held fixed.

    The starting m says "agreement is likely among matches"; EM then alternates the match probability of each
    distinct vector (E) with the m and prior that best explain them (M) until the parameters stop moving.
    Fields in ``ignore`` (those the pairs were blocked on, which agree by construction) are not evidence.
    """
    used = [i for i, f in enumerate(FIELDS) if f.name not in ignore]
    m = [[0.9 if lvl == 0 else 0.1 / max(len(f.levels) - 1, 1) for lvl in range(len(f.levels))] for f in FIELDS]
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        posterior: dict[Vector, float] = {}
        for vector in vectors:
            p_m, p_u = prior, 1.0 - prior
            for i in used:
                lvl = vector[i]
                if lvl != NULL:
                    p_m *= max(m[i][lvl], _FLOOR)
                    p_u *= max(u[i][lvl], _FLOOR)
            posterior[vector] = p_m / (p_m + p_u)
        total = sum(vectors.values())
        new_prior = sum(c * posterior[v] for v, c in vectors.items()) / total
        new_m = [_frequencies(vectors, i, len(f.levels), posterior.__getitem__) for i, f in enumerate(FIELDS)]
        delta = max(
            abs(new_prior - prior),
            *(abs(a - b) for old, new in zip(m, new_m, strict=True) for a, b in zip(old, new, strict=True)),
        )
        m, prior = new_m, min(max(new_prior, _FLOOR), 1 - _FLOOR)
        if delta < tolerance:
            converged = True
            break
    return EmResult(m=m, prior=prior, iterations=iteration, converged=converged)


BlockKey = Callable[[Demographics], str | None]


def blocked_vectors(records: Sequence[Demographics], key: BlockKey, *, max_block: int = 60) -> Counter[Vector]:
    """Comparison vectors of every pair sharing a blocking key (blocks larger than ``max_block`` skipped)."""
    blocks: dict[str, list[Demographics]] = {}
    for record in records:
        k = key(record)
        if k is not None:
            blocks.setdefault(k, []).append(record)
    vectors: Counter[Vector] = Counter()
    for members in blocks.values():
        if len(members) > max_block:
            continue  # very common keys add little and cost quadratically
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                vectors[compare(a, b)] += 1
    return vectors


def random_pairs(
    records: Sequence[Demographics], count: int, *, seed: int = 0
) -> list[tuple[Demographics, Demographics]]:
    """``count`` pairs of distinct records drawn uniformly (deterministic for a seed)."""
    rng = random.Random(seed)  # noqa: S311 - sampling for estimation, not security
    n = len(records)
    if n < 2:
        return []
    out = []
    for _ in range(count):
        i, j = rng.randrange(n), rng.randrange(n - 1)
        out.append((records[i], records[j if j < i else j + 1]))
    return out


@dataclass(frozen=True, slots=True)
class Estimate:
    """Estimated weights and how they were obtained (written beside the rules)."""

    model: FsModel
    records: int
    random_pairs: int
    passes: tuple[tuple[str, int, int, bool], ...]  # (blocking pass, pairs, iterations, converged)


def estimate_model(
    records: Sequence[Demographics],
    passes: Sequence[tuple[str, BlockKey, frozenset[str], frozenset[str]]],
    *,
    u_pairs: int = 50_000,
    seed: int = 0,
) -> Estimate:
    """Estimate a whole model: u from random pairs, m by EM per blocking pass.

    ``passes`` are ``(name, blocking key, fields learnt from this pass, fields the key blocks on)``; every field
    must be learnt by one pass that does not block on it.
    """
    u = estimate_u(random_pairs(records, u_pairs, seed=seed))
    m: dict[str, list[float]] = {}
    priors: list[float] = []
    report = []
    for name, key, learns, blocks_on in passes:
        vectors = blocked_vectors(records, key)
        result = expectation_maximisation(vectors, u, ignore=blocks_on)
        priors.append(result.prior)
        report.append((name, sum(vectors.values()), result.iterations, result.converged))
        for i, f in enumerate(FIELDS):
            if f.name in learns:
                m[f.name] = result.m[i]
    missing = [f.name for f in FIELDS if f.name not in m]
    if missing:
        raise ValueError(f"no blocking pass learns m for: {', '.join(missing)}")
    fields = tuple(
        FieldWeights(f.name, f.levels, tuple(max(x, _M_FLOOR) for x in m[f.name]), tuple(u[i]))
        for i, f in enumerate(FIELDS)
    )
    prior = sum(priors) / len(priors) if priors else 0.5
    return Estimate(FsModel(fields, prior), len(records), u_pairs, tuple(report))
