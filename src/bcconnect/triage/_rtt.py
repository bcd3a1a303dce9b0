"""The NHS referral-to-treatment (RTT) clock, computed from the period status events a pathway carries.

Pure functions over :class:`ClockEvent` sequences; every rule names its source:

- **Clock start** (RTT rules suite, Rule 1; NHS Data Dictionary REFERRAL REQUEST RECEIVED DATE): a referral to a
  consultant-led service starts the clock on the date the provider receives it — status 10. A new period also
  starts when active monitoring ends (11) or a consultant refers on for a separate condition (12).
- **Running** (DD RTT PERIOD STATUS): 20 subsequent activity and 21 transfer to another provider leave the
  clock running. **Inter-provider transfer** (DD): the period keeps its original start date and the Patient
  Pathway Identifier goes with the onward referral, so events of every provider holding the PPI are merged.
- **Clock stop** (DD class REFERRAL TO TREATMENT PERIOD): first definitive treatment (30); non-treatment
  decisions — active monitoring (31, 32), decision not to treat / no further contact (34), patient declined
  (35), death before treatment (36).
- **DNA of the first appointment** (DD, "Did Not Attend"): for routine and urgent referrals the period ends
  with 33 and is *nullified* (not reported); a new period starts (10) when the patient rebooks. For a
  two-week-wait (urgent suspected cancer) referral the period continues unless the clinician discharges the
  patient; a discharge after a DNA ends it.
- **No pauses** (Standing Rules Amendment (No.2) Regulations 2015): patient-initiated delays never stop the
  clock; nothing here pauses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum

#: status codes that start a period, that leave it running, that stop it
START_CODES = frozenset({"10", "11", "12"})
RUNNING_CODES = frozenset({"20", "21"})
STOP_CODES = frozenset({"30", "31", "32", "34", "35", "36"})
DNA_FIRST = "33"
#: a clinician discharging the patient to their GP after a two-week-wait DNA (no code of its own: 34)
DISCHARGED = "34"


class ClockState(Enum):
    """Where a pathway's clock is."""

    RUNNING = "running"
    STOPPED = "stopped"
    #: no reportable period: nullified by a first-appointment DNA and not rebooked, or never started
    NOT_RUNNING = "not-running"


@dataclass(frozen=True, slots=True)
class ClockEvent:
    """One RTT period status event: its date, DD code and the provider (ODS) that recorded it."""

    day: date
    code: str
    provider: str | None = None
    #: True for an appointment the patient did not attend (derived from an Appointment, not a status code)
    first_appointment_dna: bool = False


@dataclass(frozen=True, slots=True)
class Clock:
    """The RTT clock of one pathway: the current period's start, stop (if any) and why it stopped."""

    state: ClockState
    start: date | None
    stop: date | None = None
    stop_code: str | None = None
    #: providers the pathway passed through, in order (more than one: an inter-provider transfer)
    providers: tuple[str, ...] = ()
    #: starts of periods nullified by a first-appointment DNA (not reported)
    nullified: tuple[date, ...] = ()

    @property
    def running(self) -> bool:
        """Whether the patient is still waiting (an incomplete pathway)."""
        return self.state is ClockState.RUNNING

    @property
    def transferred(self) -> bool:
        """Whether the pathway moved between providers (an inter-provider transfer)."""
        return len(self.providers) > 1

    def days_waited(self, as_of: date) -> int:
        """Days from clock start to the stop (or ``as_of`` while running); 0 when there is no period."""
        if self.start is None:
            return 0
        end = self.stop if self.stop is not None else as_of
        return max(0, (end - self.start).days)

    def weeks_waited(self, as_of: date) -> int:
        """Completed weeks waited (RTT reporting counts whole weeks)."""
        return self.days_waited(as_of) // 7


def merge_events(groups: Iterable[Sequence[ClockEvent]]) -> list[ClockEvent]:
    """Events of every provider holding one PPI, in date order, each (date, code) once.

    The onward provider of a transfer repeats the original start and the transfer; keeping one copy of each
    gives the single period the DD describes. Order within a date is the order recorded (stable sort).
    """
    seen: set[tuple[date, str, bool]] = set()
    merged: list[ClockEvent] = []
    for event in sorted((e for group in groups for e in group), key=lambda e: e.day):
        key = (event.day, event.code, event.first_appointment_dna)
        if key not in seen:
            seen.add(key)
            merged.append(event)
    return merged


def run_clock(events: Sequence[ClockEvent], *, priority: str) -> Clock:
    """The clock after ``events`` (already merged and in order) for a referral of ``priority``.

    ``priority`` is the FHIR ServiceRequest priority: ``routine``, ``urgent`` or ``asap`` (two-week wait).
    """
    two_week_wait = priority in ("asap", "stat")
    start: date | None = None
    stop: date | None = None
    stop_code: str | None = None
    state = ClockState.NOT_RUNNING
    nullified: list[date] = []
    providers: list[str] = []
    dna_seen_in_period = False
    for event in events:
        if event.provider and (not providers or providers[-1] != event.provider):
            providers.append(event.provider)
        code = event.code
        if code in START_CODES:
            if state is not ClockState.RUNNING:  # Rule 1: a new period (after a stop or a nullified DNA)
                start, stop, stop_code, state = event.day, None, None, ClockState.RUNNING
                dna_seen_in_period = False
            continue
        if state is not ClockState.RUNNING:
            continue  # nothing runs: events after a stop belong to no period until a new start
        if code in RUNNING_CODES:
            continue  # 20 subsequent activity, 21 transfer: the clock runs on (transfer keeps the start)
        if code == DNA_FIRST or event.first_appointment_dna:
            if dna_seen_in_period:
                continue  # the code and the Appointment describe the same DNA
            dna_seen_in_period = True
            if two_week_wait:
                continue  # DD: a two-week-wait period continues after a first-appointment DNA
            assert start is not None
            nullified.append(start)  # DD: 33 ends the period and it is not reported
            start, state = None, ClockState.NOT_RUNNING
            continue
        if code in STOP_CODES:
            stop, stop_code, state = event.day, code, ClockState.STOPPED
    return Clock(state, start, stop, stop_code, tuple(providers), tuple(nullified))
