"""Per-trust source records: MRN codec, identity noise rates, duplicates and merges."""

from __future__ import annotations

from collections import Counter

from bcconnect_sandbox.population import make_person
from bcconnect_sandbox.settings import DEFAULT_NOW, NoiseSettings
from bcconnect_sandbox.sources import IdCodec, SourcePatient, trust_records

NOISE = NoiseSettings()


def test_codec_round_trips_and_is_opaque() -> None:
    """An MRN decodes to its person; neighbouring persons do not get neighbouring MRNs."""
    codec = IdCodec(5, "RL4")
    for index in (0, 1, 2, 999, 1_299_999):
        for record_no in range(4):
            mrn = codec.mrn(index, record_no)
            assert mrn.startswith("RW")
            assert codec.person_of(mrn) == index
            assert codec.person_of(f"{mrn}-E3") == index
    assert abs(int(codec.mrn(1)[2:]) - int(codec.mrn(2)[2:])) > 1000
    assert codec.person_of("XX123") is None
    assert IdCodec(6, "RL4").mrn(1) != codec.mrn(1)


def _patients(n: int) -> list[SourcePatient]:
    out = []
    for i in range(n):
        person = make_person(2, i, DEFAULT_NOW)
        for trust in person.trusts:
            codec = IdCodec(2, trust)
            out += [
                r.fact
                for r in trust_records(person, trust, seed=2, noise=NOISE, codec=codec)
                if isinstance(r.fact, SourcePatient)
            ]
    return out


def test_identity_noise_rates_are_near_the_settings() -> None:
    """NHS number missing ~5% of primary records, unverified ~8%, duplicates ~2% (wide tolerances)."""
    patients = [p for p in _patients(3000) if p.record_no == 0]
    n = len(patients)
    missing = sum(p.nhs_number is None for p in patients) / n
    unverified = sum(p.nhs_status not in (None, "01") for p in patients) / n
    assert 0.03 <= missing <= 0.07
    assert 0.05 <= unverified <= 0.11


def test_duplicates_are_linked_when_merged() -> None:
    """Some duplicates are merged at the start (replaced-by + replaces), others still open."""
    patients = _patients(3000)
    dups = [p for p in patients if p.record_no == 1]
    assert dups
    merged = [p for p in dups if p.replaced_by]
    assert merged
    assert len(merged) < len(dups)
    by_id = {p.id: p for p in patients}
    for dup in merged:
        assert not dup.active
        assert dup.replaced_by is not None
        assert by_id[dup.replaced_by].replaces == dup.id


def test_pseudonymous_sexual_health_records_have_no_nhs_number() -> None:
    """Some sexual-health registrations exist, without NHS number or address."""
    shadows = [p for p in _patients(6000) if p.pseudonymous]
    assert shadows
    assert all(p.nhs_number is None and not p.postcode for p in shadows)


def test_records_are_deterministic_and_ids_unique() -> None:
    """The same inputs give the same records; ids are unique within a trust."""
    person = make_person(9, 4, DEFAULT_NOW)
    trust = person.trusts[0]
    a = trust_records(person, trust, seed=9, noise=NOISE, codec=IdCodec(9, trust))
    b = trust_records(person, trust, seed=9, noise=NOISE, codec=IdCodec(9, trust))
    assert a == b
    ids = Counter(r.id for r in a)
    assert max(ids.values()) == 1
