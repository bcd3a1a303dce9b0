"""A sync that reached the end is OK only while quarantine and held counts stay within the thresholds."""

from __future__ import annotations

from bcconnect.ingest import PageCounts, SyncReport

DEFAULTS = {"max_patients_quarantined": 0, "max_quarantine_rate": 0.01, "max_held_rate": 0.01}


def _report(**counts: int) -> SyncReport:
    report = SyncReport(adapter="t")
    report.add(PageCounts(**counts))
    return report


def test_a_clean_run_is_ok() -> None:
    report = _report(fetched=1000, new=995, quarantined=5)
    report.judge(**DEFAULTS)
    assert report.status == "OK"
    assert report.degraded is None


def test_one_quarantined_patient_degrades_the_run() -> None:
    report = _report(fetched=1000, new=999, quarantined=1, quarantined_patients=1)
    report.judge(**DEFAULTS)
    assert report.status == "DEGRADED"
    assert report.degraded == "1 Patient record(s) quarantined (limit 0)"


def test_more_than_one_percent_quarantined_degrades_the_run() -> None:
    report = _report(fetched=1000, new=989, quarantined=11)
    report.judge(**DEFAULTS)
    assert report.status == "DEGRADED"
    assert "11 of 1000 records quarantined (1.1% > 1.0%)" in (report.degraded or "")


def test_held_resources_past_the_threshold_degrade_the_run() -> None:
    report = _report(fetched=100, new=100, held=2)
    report.judge(**DEFAULTS)
    assert "2 resources held" in (report.degraded or "")
    report.judge(**{**DEFAULTS, "max_held_rate": 0.05})
    assert report.status == "OK"


def test_offered_types_that_are_not_mapped_are_named_with_counts() -> None:
    report = _report(fetched=10, new=10)
    report.offered_not_mapped = {"Basic": 3, "Questionnaire": None}
    assert report.not_mapped_line == "offered, not mapped: Basic (3), Questionnaire (?)"


def test_a_failure_wins_over_degraded() -> None:
    report = _report(fetched=10, quarantined=10, quarantined_patients=10)
    report.error = "Patient: GET /Patient: HTTP 500"
    report.judge(**DEFAULTS)
    assert report.status == "FAILED"
