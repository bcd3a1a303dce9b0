"""The RTT clock rules, one hand-written event sequence per rule, each with the rule's source.

Sources: NHS Data Dictionary (DD) classes REFERRAL TO TREATMENT PERIOD and RTT PERIOD STATUS, "Did Not
Attend", "Discharge After Patient Did Not Attend", "Inter-Provider Transfer"; the Department of Health RTT
rules suite (Oct 2022) Rule 1 (clock start); the Standing Rules Amendment (No.2) Regulations 2015 (no pauses).
"""

from __future__ import annotations

from datetime import date, timedelta

from bcconnect.triage import ClockEvent, ClockState, merge_events, run_clock

D0 = date(2026, 1, 5)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def test_clock_starts_at_referral_receipt() -> None:
    """Rule 1 / DD REFERRAL REQUEST RECEIVED DATE: status 10 on receipt starts the clock; it runs from then."""
    clock = run_clock([ClockEvent(day(0), "10", "RNA")], priority="routine")
    assert clock.state is ClockState.RUNNING
    assert clock.start == day(0)
    assert clock.weeks_waited(day(41 * 7 + 3)) == 41


def test_subsequent_activity_leaves_the_clock_running() -> None:
    """DD RTT PERIOD STATUS 20: an outpatient attendance that is not treatment does not stop the clock."""
    clock = run_clock([ClockEvent(day(0), "10"), ClockEvent(day(30), "20")], priority="routine")
    assert clock.running
    assert clock.start == day(0)


def test_first_definitive_treatment_stops_the_clock() -> None:
    """DD REFERRAL TO TREATMENT PERIOD: the period ends at the start of first definitive treatment (30)."""
    clock = run_clock(
        [ClockEvent(day(0), "10"), ClockEvent(day(20), "20"), ClockEvent(day(90), "30")], priority="urgent"
    )
    assert clock.state is ClockState.STOPPED
    assert (clock.stop, clock.stop_code) == (day(90), "30")
    assert clock.days_waited(day(400)) == 90  # a stopped clock does not keep counting


def test_active_monitoring_stops_the_clock_and_a_new_period_starts_when_it_ends() -> None:
    """DD 31/32 active monitoring stops the clock; 11 (active monitoring ends) starts a new period."""
    events = [ClockEvent(day(0), "10"), ClockEvent(day(50), "32"), ClockEvent(day(200), "11")]
    stopped = run_clock(events[:2], priority="routine")
    assert (stopped.state, stopped.stop_code) == (ClockState.STOPPED, "32")
    restarted = run_clock(events, priority="routine")
    assert restarted.running
    assert restarted.start == day(200)


def test_decision_not_to_treat_stops_the_clock() -> None:
    """DD 34 decision not to treat / no further contact is a non-treatment clock stop."""
    clock = run_clock([ClockEvent(day(0), "10"), ClockEvent(day(15), "34")], priority="routine")
    assert (clock.state, clock.stop, clock.stop_code) == (ClockState.STOPPED, day(15), "34")


def test_patient_declines_or_dies_stops_the_clock() -> None:
    """DD 35 patient declined treatment and 36 died before treatment both stop the clock."""
    for code in ("35", "36"):
        clock = run_clock([ClockEvent(day(0), "10"), ClockEvent(day(9), code)], priority="routine")
        assert clock.stop_code == code


def test_routine_first_appointment_dna_nullifies_the_period_and_rebooking_restarts_it() -> None:
    """DD Did Not Attend: for routine/urgent referrals a first-activity DNA (33) ends the period, which is not
    reported; a new period starts (10) when the patient rebooks."""
    events = [ClockEvent(day(0), "10"), ClockEvent(day(60), "33")]
    nullified = run_clock(events, priority="routine")
    assert nullified.state is ClockState.NOT_RUNNING
    assert nullified.nullified == (day(0),)
    rebooked = run_clock([*events, ClockEvent(day(62), "10")], priority="urgent")
    assert rebooked.running
    assert rebooked.start == day(62)


def test_a_dna_seen_only_as_an_appointment_counts_too() -> None:
    """The same DD rule when the provider sent the Appointment (noshow) but no 33 code."""
    events = [ClockEvent(day(0), "10"), ClockEvent(day(60), "", first_appointment_dna=True)]
    assert run_clock(events, priority="routine").state is ClockState.NOT_RUNNING


def test_two_week_wait_dna_does_not_stop_the_clock() -> None:
    """DD: for a two-week-wait (urgent suspected cancer) referral the period continues after a first DNA."""
    events = [ClockEvent(day(0), "10"), ClockEvent(day(10), "", first_appointment_dna=True)]
    clock = run_clock(events, priority="asap")
    assert clock.running
    assert clock.start == day(0)


def test_discharge_after_a_two_week_wait_dna_ends_the_period() -> None:
    """DD Discharge After Patient Did Not Attend: the clinician discharging to the GP ends the period."""
    events = [ClockEvent(day(0), "10"), ClockEvent(day(10), "", first_appointment_dna=True), ClockEvent(day(12), "34")]
    clock = run_clock(events, priority="asap")
    assert (clock.state, clock.stop) == (ClockState.STOPPED, day(12))


def test_inter_provider_transfer_keeps_the_original_start() -> None:
    """DD Inter-Provider Transfer: the period keeps its original start and the PPI goes with the onward
    referral; the events of both providers, merged, give one period from the first receipt."""
    dudley = [ClockEvent(day(0), "10", "RNA"), ClockEvent(day(100), "21", "RNA")]
    wolverhampton = [
        ClockEvent(day(0), "10", "RL4"),
        ClockEvent(day(100), "21", "RL4"),
        ClockEvent(day(150), "20", "RL4"),
    ]
    clock = run_clock(merge_events([dudley, wolverhampton]), priority="routine")
    assert clock.running
    assert clock.start == day(0)
    assert clock.transferred
    assert clock.providers == ("RNA", "RL4")
    assert clock.weeks_waited(day(300)) == 42


def test_no_pauses_a_patient_initiated_delay_does_not_stop_the_clock() -> None:
    """Since 1 Oct 2015 there are no pauses: a cancelled-by-patient appointment is just subsequent activity."""
    clock = run_clock(
        [ClockEvent(day(0), "10"), ClockEvent(day(40), "20"), ClockEvent(day(80), "20")], priority="routine"
    )
    assert clock.days_waited(day(100)) == 100


def test_events_after_a_stop_belong_to_no_period_until_a_new_start() -> None:
    """A follow-up (20) after treatment does not restart the clock (DD 90: activity after treatment)."""
    clock = run_clock(
        [ClockEvent(day(0), "10"), ClockEvent(day(30), "30"), ClockEvent(day(60), "20")], priority="routine"
    )
    assert (clock.state, clock.stop) == (ClockState.STOPPED, day(30))


def test_the_rules_can_fail_a_wrong_clock() -> None:
    """Guard check: were a DNA ignored for routine referrals, the nullified period would still be running."""
    events = [ClockEvent(day(0), "10"), ClockEvent(day(60), "33")]
    assert run_clock(events, priority="asap").running  # the two-week-wait path runs on …
    assert not run_clock(events, priority="routine").running  # … the routine path must not
