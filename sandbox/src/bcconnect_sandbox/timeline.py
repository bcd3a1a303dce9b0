"""Simulated time: each advance brings new activity, corrections, cancellations, deletions and merges.

Round ``r`` of a trust draws its changes from a generator seeded with ``(seed, r, trust)``, so the same
sequence of advances gives the same changes. About 2% of the population is touched per simulated day
(bounded per advance), spread over the interval so ``lastUpdated`` keeps moving forward.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from bcconnect_sandbox.population import Encounter, Observation
from bcconnect_sandbox.settings import SandboxSettings
from bcconnect_sandbox.sources import Record, SourcePatient, trust_records
from bcconnect_sandbox.state import TrustState

TOUCHED_PER_DAY: Final = 0.02
MAX_TOUCHED_PER_ADVANCE: Final = 5_000
#: record number of a registration that happens after the start (see sources: 0, 1 and 2 are taken)
LATE_REGISTRATION: Final = 3


class Timeline:
    """Moves the simulated clock of every trust in a world."""

    def __init__(self, settings: SandboxSettings, states: Mapping[str, TrustState]) -> None:
        self.settings = settings
        self.states = states
        self.now = settings.now
        self.rounds = 0

    def advance(self, delta: timedelta) -> dict[str, int]:
        """Move time on by ``delta``; returns how many versions each trust gained."""
        self.rounds += 1
        start, self.now = self.now, self.now + delta
        days = delta.total_seconds() / 86_400
        touched = min(MAX_TOUCHED_PER_ADVANCE, max(1, round(self.settings.persons * TOUCHED_PER_DAY * days)))
        gained = {}
        for trust, state in self.states.items():
            rng = random.Random(f"{self.settings.seed}:advance:{self.rounds}:{trust}")
            before = state.change_count
            for k in range(touched):
                at = start + delta * (k + 1) / (touched + 1)
                self._change(state, rng, rng.randrange(self.settings.persons), at, k)
            gained[trust] = state.change_count - before
        return gained

    def _change(self, state: TrustState, rng: random.Random, index: int, at: datetime, k: int) -> None:
        roll = rng.random()
        current = [
            v.record
            for v in (state.read(r.id) for r in state.base_records(index))
            if v is not None and v.record is not None
        ]
        patients = [r for r in current if r.kind == "patient" and isinstance(r.fact, SourcePatient)]
        if not patients:
            if roll < 0.3:
                self._register(state, index, at)
            return
        primary = patients[0]
        by_kind = {
            kind: [r for r in current if r.kind == kind]
            for kind in ("observation", "condition", "appointment", "encounter")
        }
        if roll < 0.45:
            self._new_activity(state, rng, primary, at, k)
        elif roll < 0.60:
            self._correct_patient(state, rng, primary, at)
        elif roll < 0.70 and by_kind["observation"]:
            obs = rng.choice(by_kind["observation"])
            assert isinstance(obs.fact, Observation)
            values = tuple(round(v * rng.uniform(0.9, 1.1), 1) for v in obs.fact.values)
            state.put(replace(obs, fact=replace(obs.fact, values=values), status="amended"), at)
        elif roll < 0.80 and any(r.status == "booked" for r in by_kind["appointment"]):
            appt = next(r for r in by_kind["appointment"] if r.status == "booked")
            state.put(replace(appt, status="cancelled"), at)
        elif roll < 0.88 and (by_kind["condition"] or by_kind["observation"]):
            doomed = rng.choice(by_kind["condition"] or by_kind["observation"])
            state.delete(doomed.kind, doomed.id, at)  # entered in error
        elif (dup := self._open_duplicate(patients)) is not None:
            self._merge(state, primary, dup, at)
        else:
            self._new_activity(state, rng, primary, at, k)

    @staticmethod
    def _open_duplicate(patients: list[Record]) -> Record | None:
        """The in-trust duplicate not merged yet (sexual-health registrations are kept apart on purpose)."""
        for record in patients:
            fact = record.fact
            if isinstance(fact, SourcePatient) and fact.record_no == 1 and fact.active:
                return record
        return None

    def _new_activity(self, state: TrustState, rng: random.Random, patient: Record, at: datetime, k: int) -> None:
        stem = f"{patient.id}-"
        tag = f"N{self.rounds}x{k}"
        kind = "ae" if rng.random() < 0.6 else "outpatient"
        enc = Encounter(kind, state.trust, at - timedelta(hours=3), at)
        state.put(Record("encounter", f"{stem}E{tag}", patient.id, enc), at)
        obs = Observation(
            "bp", state.trust, at - timedelta(hours=2), (float(rng.randint(105, 175)), float(rng.randint(60, 105)))
        )
        state.put(Record("observation", f"{stem}O{tag}", patient.id, obs), at)

    def _correct_patient(self, state: TrustState, rng: random.Random, patient: Record, at: datetime) -> None:
        fact = patient.fact
        assert isinstance(fact, SourcePatient)
        if fact.nhs_status not in (None, "01"):
            fact = replace(fact, nhs_status="01")  # the trace came back
        else:
            phone = f"07{rng.randint(10**8, 10**9 - 1)}"
            fact = replace(fact, address_line=f"{rng.randint(1, 240)} Moved Lane", phone=phone)
        state.put(replace(patient, fact=fact), at)

    def _merge(self, state: TrustState, survivor: Record, duplicate: Record, at: datetime) -> None:
        dup, keep = duplicate.fact, survivor.fact
        assert isinstance(dup, SourcePatient)
        assert isinstance(keep, SourcePatient)
        state.put(replace(duplicate, fact=replace(dup, active=False, replaced_by=survivor.id)), at)
        state.put(replace(survivor, fact=replace(keep, replaces=duplicate.id)), at)

    def _register(self, state: TrustState, index: int, at: datetime) -> None:
        """A person first seen at this trust: a new patient record (with this trust's noise)."""
        person = state.population.person(index)
        home = replace(person, trusts=(state.trust,))
        records = trust_records(
            home,
            state.trust,
            seed=self.settings.seed + 7919 * self.rounds,
            noise=self.settings.noise,
            codec=state.codec,
        )
        fact = records[0].fact
        assert isinstance(fact, SourcePatient)
        record_id = state.codec.mrn(index, LATE_REGISTRATION)
        if state.read(record_id) is None:
            new = replace(fact, id=record_id, record_no=LATE_REGISTRATION, replaced_by=None, replaces=None, active=True)
            state.put(Record("patient", record_id, record_id, new), at)
