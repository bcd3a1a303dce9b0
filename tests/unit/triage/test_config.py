"""The triage configuration: the package's networks and routing, overridable, errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.errors import ConfigError
from bcconnect.triage import load_triage_config, percentile, summarise

NETWORKS = {
    "Breast", "Colorectal", "Critical Care", "ENT", "General Surgery", "Gynaecology",
    "Ophthalmology", "Orthopaedics", "Pharmacy", "Skin", "Urology",
}  # fmt: skip


def test_the_eleven_networks_with_their_treatment_functions() -> None:
    """All eleven networks; ENT is TFC 120; Pharmacy is non-RTT (no TFC) and matched on its reasons."""
    config = load_triage_config()
    assert set(config.networks) == NETWORKS
    assert config.network("ent").tfc[0] == "120"
    assert config.network_of("120", frozenset()) == config.network("ENT")
    assert config.network_of(None, frozenset({"182836005"})) == config.network("Pharmacy")
    assert "2857-1" in config.network("Urology").context_results  # PSA for urology
    assert "29771-3" in config.network("Colorectal").context_results  # FIT for colorectal


def test_routing_is_configuration_and_the_proposed_pairing_switches() -> None:
    """Dudley–Wolverhampton ENT on, Sandwell–Walsall proposed (off) and switchable; H&N cancer to RL4."""
    config = load_triage_config()
    enabled = {p.name: p.enabled for p in config.pairings}
    assert enabled["Dudley–Wolverhampton ENT"] is True
    assert enabled["Sandwell–Walsall ENT (proposed)"] is False
    switched = config.with_pairing("Sandwell", enabled=True)
    assert all(p.enabled for p in switched.pairings)
    assert config.routes[0].to == "RL4"


def test_an_override_file_replaces_the_defaults_and_errors_name_it(tmp_path: Path) -> None:
    """A deployment's own file is read instead; a broken one is a ConfigError naming the file and key."""
    text = (Path(__file__).resolve().parents[3] / "src/bcconnect/triage/networks.toml").read_text(encoding="utf-8")
    own = tmp_path / "networks.toml"
    own.write_text(text.replace('[networks.Skin]\ntfc = ["330"]', '[networks.Skin]\ntfc = ["331"]'), encoding="utf-8")
    assert load_triage_config(own).network("Skin").tfc == ("331",)
    broken = tmp_path / "broken.toml"
    broken.write_text("[networks.X]\ntfc = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.toml: missing key 'systems'"):
        load_triage_config(broken)
    with pytest.raises(ConfigError, match="no clinical network 'Cardiology'"):
        load_triage_config().network("Cardiology")


def test_percentile_and_summary_arithmetic() -> None:
    """Nearest-rank 92nd percentile; empty input is 0; summary counts only running clocks."""
    assert percentile(list(range(1, 101)), 92) == 92
    assert percentile([], 92) == 0.0
    assert summarise([]) == []
