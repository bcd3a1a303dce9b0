"""The versioned linkage rules (``rules.toml``) and the EM-estimated weights beside them (``weights.toml``).

Every problem in a rules file is collected before one :class:`ConfigError` is raised, so a steward fixes them
all in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bcconnect.config import read_toml
from bcconnect.errors import ConfigError
from bcconnect.identity._blocking import BLOCKING_KEYS
from bcconnect.identity._compare import FIELDS
from bcconnect.identity._fs import Estimate, FieldWeights, FsModel

DEFAULT_RULES: Final = Path(__file__).with_name("rules.toml")
_STATES: Final = frozenset({"MATCH", "POSSIBLE_MATCH", "SCORE"})


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything a link decision depends on; ``version`` is recorded with every link."""

    version: str
    model: FsModel
    match_at: float
    review_at: float
    same_nhs_both_unverified: str
    same_nhs_one_verified: str
    dob_swap_is_conflict: bool
    blocking: tuple[str, ...]
    source_priority: tuple[str, ...]
    default_staleness_seconds: float
    weights_generated: str = ""


def load_weights(path: Path) -> tuple[FsModel, str]:
    """The Fellegi–Sunter model stored in a weights file, and when it was generated."""
    data = read_toml(path)
    problems: list[str] = []
    fields: list[FieldWeights] = []
    table = data.get("fields", {})
    for spec in FIELDS:
        entry = table.get(spec.name)
        if not isinstance(entry, dict):
            problems.append(f"fields.{spec.name}: missing")
            continue
        m, u = entry.get("m"), entry.get("u")
        n = len(spec.levels)
        if not (isinstance(m, list) and isinstance(u, list) and len(m) == n and len(u) == n):
            problems.append(f"fields.{spec.name}: expected m and u lists of {n} probabilities")
            continue
        if not all(isinstance(x, int | float) and 0 < x <= 1 for x in (*m, *u)):
            problems.append(f"fields.{spec.name}: probabilities must be in (0, 1]")
            continue
        fields.append(FieldWeights(spec.name, spec.levels, tuple(map(float, m)), tuple(map(float, u))))
    if problems:
        raise ConfigError("; ".join(problems), file=str(path))
    return FsModel(tuple(fields), float(data.get("prior", 0.5))), str(data.get("generated", ""))


def load_rules(path: Path | None = None) -> Rules:
    """Read a rules file (default: the packaged ``rules.toml``) and its weights file."""
    path = path or DEFAULT_RULES
    data = read_toml(path)
    problems: list[str] = []
    det = data.get("deterministic", {})
    prob = data.get("probabilistic", {})
    surv = data.get("survivorship", {})
    version = data.get("version")
    if not isinstance(version, str) or not version:
        problems.append("version: expected a non-empty string")
    for key in ("same_nhs_both_unverified", "same_nhs_one_verified"):
        if det.get(key, "POSSIBLE_MATCH") not in _STATES:
            problems.append(f"deterministic.{key}: expected one of {', '.join(sorted(_STATES))}")
    match_at, review_at = prob.get("match_at"), prob.get("review_at")
    if not (isinstance(match_at, int | float) and isinstance(review_at, int | float) and review_at <= match_at):
        problems.append("probabilistic: expected numbers review_at <= match_at")
    blocking = prob.get("blocking", list(BLOCKING_KEYS))
    unknown = [b for b in blocking if b not in BLOCKING_KEYS]
    if unknown:
        problems.append(f"probabilistic.blocking: unknown {unknown} (known: {', '.join(BLOCKING_KEYS)})")
    if problems:
        raise ConfigError("; ".join(problems), file=str(path))
    model, generated = load_weights(path.with_name(str(data.get("weights_file", "weights.toml"))))
    return Rules(
        version=str(version),
        model=model,
        match_at=float(match_at),
        review_at=float(review_at),
        same_nhs_both_unverified=str(det.get("same_nhs_both_unverified", "POSSIBLE_MATCH")),
        same_nhs_one_verified=str(det.get("same_nhs_one_verified", "SCORE")),
        dob_swap_is_conflict=bool(det.get("dob_swap_is_conflict", False)),
        blocking=tuple(blocking),
        source_priority=tuple(surv.get("source_priority", ())),
        default_staleness_seconds=float(surv.get("default_staleness_seconds", 3600)),
        weights_generated=generated,
    )


def format_weights(estimate: Estimate, *, description: str, now: datetime | None = None) -> str:
    """A weights file for an estimate (TOML written by hand: the standard library only reads TOML)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        "# Fellegi–Sunter m/u probabilities estimated with EM. Generated; do not edit by hand.",
        f"# {description}",
        f'generated = "{stamp}"',
        f"records = {estimate.records}",
        f"random_pairs = {estimate.random_pairs}",
        f"prior = {estimate.model.prior:.6g}",
    ]
    for name, pairs, iterations, converged in estimate.passes:
        lines.append(f"# EM pass {name}: {pairs} pairs, {iterations} iterations, converged={converged}")
    for f in estimate.model.fields:
        lines += [
            "",
            f"[fields.{f.name}]",
            "levels = [" + ", ".join(f'"{lvl}"' for lvl in f.levels) + "]",
            "m = [" + ", ".join(f"{x:.6g}" for x in f.m) + "]",
            "u = [" + ", ".join(f"{x:.6g}" for x in f.u) + "]",
        ]
    return "\n".join(lines) + "\n"
