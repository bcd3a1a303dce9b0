"""Our endpoint passes every error-severity check of the server pack (a guard: any failing error check fails it)."""

from __future__ import annotations

import pytest

from bcconnect.conformance import Outcome, Severity, console_summary, run_pack
from support.conformance_target import FhirTarget

pytestmark = pytest.mark.anyio


async def test_our_endpoint_passes_the_server_pack(fhir_target: FhirTarget) -> None:
    """No error-severity check fails or goes without a verdict; each ran (none n/a) with its fixture people."""
    report = await run_pack("server", fhir_target.base, fhir_target.options())
    print(console_summary(report, verbose=True))
    assert report.passed, console_summary(report)
    assert not report.failures(Severity.ERROR), console_summary(report)
    outcomes = {r.check.id: r.outcome for r in report.results}
    # the profile and auth checks ran with their fixture people and token (a verdict, not n/a)
    for check_id in ("ig.objector-invisible", "ig.restricted-hidden", "ig.restricted-not-filterable"):
        assert outcomes[check_id] is Outcome.PASS, console_summary(report)
    assert outcomes["srv.auth.negatives"] is Outcome.PASS, console_summary(report)
    not_applicable = [
        r.check.id for r in report.results if r.outcome is Outcome.NOT_APPLICABLE and r.check.severity is Severity.ERROR
    ]
    assert not not_applicable, console_summary(report)
