"""Black-box conformance testing of a FHIR server or a trust's source system, with reports a person reads.

The runner treats its target as a black box over HTTP (or MLLP for an HL7 v2 feed): it imports nothing of the
engine but the shared FHIR constants and NHS number rules, so it tests our endpoint exactly as it would test
anyone's. Packs (``server``, ``source-fhir``, ``source-json``, ``source-hl7``) are lists of checks, each with
an id, a title, a specification reference and a severity::

    report = await run_pack("server", "https://example.org/fhir", {"token": "…"})
    write_reports(report, Path("conformance-report"))   # report.json, junit.xml, report.html
    print(console_summary(report)); sys.exit(0 if report.passed else 1)
"""

from bcconnect.conformance._model import (
    Check,
    CheckResult,
    Exchange,
    Failed,
    NotApplicable,
    Outcome,
    Pack,
    Report,
    Severity,
    Spec,
)
from bcconnect.conformance._report import console_summary, html_report, json_report, junit_xml, write_reports
from bcconnect.conformance._runner import run_check, run_pack
from bcconnect.conformance.packs import PACKS, get_pack

__all__ = [
    "PACKS",
    "Check",
    "CheckResult",
    "Exchange",
    "Failed",
    "NotApplicable",
    "Outcome",
    "Pack",
    "Report",
    "Severity",
    "Spec",
    "console_summary",
    "get_pack",
    "html_report",
    "json_report",
    "junit_xml",
    "run_check",
    "run_pack",
    "write_reports",
]
