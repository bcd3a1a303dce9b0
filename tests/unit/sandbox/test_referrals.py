"""The sandbox's referral reality: e-RS referrals, RTT clocks, transfers, DNAs, duplicates and their truth."""

from __future__ import annotations

import csv
import statistics
from collections import Counter
from pathlib import Path

import pytest

from bcconnect_sandbox.dialects.fhir import PPI_SYSTEM, RTT_EVENT_EXTENSION, UBRN_SYSTEM, to_fhir
from bcconnect_sandbox.generate import generate_to_directory
from bcconnect_sandbox.ground_truth import rtt_rows
from bcconnect_sandbox.population import Person, make_person
from bcconnect_sandbox.settings import DEFAULT_NOW, ReferralSettings, SandboxSettings
from bcconnect_sandbox.sources import IdCodec, trust_records

SAMPLE = 6_000


@pytest.fixture(scope="module")
def people() -> list[Person]:
    return [make_person(5, i, DEFAULT_NOW) for i in range(SAMPLE)]


def _open_weeks(people: list[Person]) -> list[tuple[str, str, str, float]]:
    today = DEFAULT_NOW.date()
    return [
        (r.trust, r.network.name, r.priority, (today - r.clock_start).days / 7)
        for p in people
        for r in p.referrals
        if r.open and r.clock_start is not None and r.network.tfc is not None
    ]


def test_every_referral_has_a_ubrn_and_a_requesting_practice(people: list[Person]) -> None:
    """UBRNs are 12 digits; the requester is the person's GP practice; reasons are SNOMED codes."""
    referrals = [r for p in people for r in p.referrals]
    assert len(referrals) > 1000
    assert all(len(r.ubrn) == 12 and r.ubrn.isdigit() for r in referrals)
    assert all(r.requester for r in referrals)
    assert all(r.reason is not None and r.reason.code.isdigit() for r in referrals)


def test_priority_mix_and_triage_outcomes(people: list[Person]) -> None:
    """Routine dominates, two-week-wait only for cancer networks; every triage outcome occurs."""
    referrals = [r for p in people for r in p.referrals]
    priorities = Counter(r.priority for r in referrals)
    assert priorities["routine"] > priorities["urgent"] > priorities["asap"] > 0
    assert all(r.network.cancer_pathway for r in referrals if r.priority == "asap")
    assert {"awaiting", "accepted", "returned", "redirected"} <= {r.triage for r in referrals}


def test_waits_differ_by_trust_and_reach_every_long_wait_bucket(people: list[Person]) -> None:
    """Dudley's routine waits are longer than Walsall's (configured), and the tail passes 104 weeks."""
    waits = _open_weeks(people)
    routine = {t: [w for tr, _, pr, w in waits if tr == t and pr == "routine" and w > 3] for t in ("RNA", "RBK")}
    assert statistics.median(routine["RNA"]) > 1.3 * statistics.median(routine["RBK"])
    for weeks in (18, 40, 52, 65, 78, 104):
        assert any(w > weeks for *_, w in waits), weeks


def test_transfers_keep_the_pathway_identifier_and_the_clock(people: list[Person]) -> None:
    """An onward referral to another trust carries the first UBRN as PPI and the original clock start."""
    moved = [(p, r) for p in people for r in p.referrals if r.transferred_in]
    assert moved
    for person, onward in moved:
        left = next(r for r in person.referrals if r.ppi == onward.ppi and r.transferred_out is not None)
        assert left.trust != onward.trust
        assert onward.clock_start == left.received
        assert onward.ubrn != onward.ppi == left.ubrn


def test_a_routine_first_appointment_dna_restarts_the_clock(people: list[Person]) -> None:
    """Routine/urgent: 33 then a new 10 at rebooking; two-week-wait: no 33, the clock runs on."""
    dnas = [
        r for p in people for r in p.referrals if r.open and r.appointment_status == "noshow" and not r.transferred_in
    ]
    assert dnas
    for r in dnas:
        codes = [code for _, code in r.events]
        if r.priority == "asap":
            assert "33" not in codes
            assert r.clock_start == r.received
        else:
            assert codes[-2:] == ["33", "10"]
            assert r.clock_start == r.events[-1][0]


def test_duplicates_are_open_in_the_same_network_at_another_trust(people: list[Person]) -> None:
    """A duplicate referral names the other open referral of the same person and network."""
    pairs = [(p, r) for p in people for r in p.referrals if r.duplicate_of]
    assert pairs
    for person, dup in pairs:
        first = next(r for r in person.referrals if r.ubrn == dup.duplicate_of)
        assert first.network == dup.network
        assert first.trust != dup.trust
        assert first.open
        assert dup.open


def test_distributions_are_configurable() -> None:
    """A world where every referral is still open has no closed pathways."""
    settings = ReferralSettings(open_share=1.0, awaiting_triage_share=0.0, returned_rate=0.0, redirected_rate=0.0)
    people = [make_person(5, i, DEFAULT_NOW, referrals=settings) for i in range(500)]
    assert all(r.clock_stop is None for p in people for r in p.referrals if r.network.tfc)
    with pytest.raises(ValueError, match="dna_rate"):
        ReferralSettings(dna_rate=1.5)


def test_fhir_pathway_carries_ppi_events_and_the_referral_its_ubrn(people: list[Person]) -> None:
    """The FHIR dialect renders the PPI (issuer X09), RTT status events, and the UBRN on the ServiceRequest."""
    person = next(p for p in people if any(r.open and r.network.tfc and r.triage == "accepted" for r in p.referrals))
    trust = next(r.trust for r in person.referrals if r.open and r.network.tfc and r.triage == "accepted")
    records = trust_records(person, trust, seed=5, noise=SandboxSettings(density=0).noise, codec=IdCodec(5, trust))
    pathway = next(to_fhir(r, trust, 1, DEFAULT_NOW) for r in records if r.kind == "pathway")
    referral = next(to_fhir(r, trust, 1, DEFAULT_NOW) for r in records if r.kind == "referral")
    ppi = next(i for i in pathway["identifier"] if i["system"] == PPI_SYSTEM)  # type: ignore[index,union-attr]
    assert ppi["assigner"]["identifier"]["value"] == "X09"  # type: ignore[index]
    assert any(e["url"] == RTT_EVENT_EXTENSION for e in pathway["extension"])  # type: ignore[index,union-attr]
    assert referral["identifier"][0]["system"] == UBRN_SYSTEM  # type: ignore[index]


def test_truth_counts_weeks_from_the_clock_start(people: list[Person]) -> None:
    """rtt_truth rows: weeks waited = whole weeks from the (restarted or transferred) clock start."""
    rows = [row for p in people[:800] for row in rtt_rows(p, reference=DEFAULT_NOW.date())]
    assert rows
    for row in rows:
        assert int(row[11]) == int(row[10]) // 7


def test_generate_writes_the_referral_truth_beside_the_linkage_truth(tmp_path: Path) -> None:
    """``generate`` writes rtt_truth.csv and referral_truth.csv with a row per pathway / referral."""
    generate_to_directory(SandboxSettings(density=0, persons=120, seed=2), tmp_path)
    with (tmp_path / "rtt_truth.csv").open(encoding="utf-8") as f:
        rtt = list(csv.DictReader(f))
    with (tmp_path / "referral_truth.csv").open(encoding="utf-8") as f:
        refs = list(csv.DictReader(f))
    assert rtt
    assert refs
    assert {r["ppi"] for r in rtt} <= {r["ppi"] for r in refs}
