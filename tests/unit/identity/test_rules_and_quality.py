"""The rules file is validated as a whole; the linker's plan reaches the quality targets on synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.errors import ConfigError
from bcconnect.identity import Rules, demographics, load_rules
from bcconnect.identity._evaluate import MemoryIndex, pairwise_metrics
from support.identity_population import population


def test_every_problem_in_a_rules_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(
        'version = ""\n[deterministic]\nsame_nhs_both_unverified = "MAYBE"\n'
        '[probabilistic]\nmatch_at = 5\nreview_at = 9\nblocking = ["shoe_size"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(bad)
    message = str(caught.value)
    for part in ("version", "same_nhs_both_unverified", "review_at <= match_at", "shoe_size"):
        assert part in message


def test_the_packaged_rules_carry_a_version_and_estimated_weights(rules: Rules) -> None:
    assert rules.version
    assert rules.weights_generated
    assert rules.review_at < rules.match_at


def test_linking_a_noisy_population_meets_the_targets(rules: Rules) -> None:
    """3,000 persons at the sandbox's default noise: precision 1, recall ≥ 98.5%, review queue ≤ 1%."""
    records = sorted(population(3000, seed=11), key=lambda r: r.ods_code)
    index = MemoryIndex(rules)
    for rec in records:
        index.link(demographics(rec.patient))
    truth = {r.patient["id"]: r.person_id for r in records}
    metrics = pairwise_metrics(index.person_of, truth, review_queue=len(index.review))
    assert metrics.precision >= 0.999
    assert metrics.recall >= 0.985
    assert metrics.review_share <= 0.01
