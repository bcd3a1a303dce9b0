"""Our endpoint passes the server pack's error-severity checks (but the gaps named below, each a real finding)."""

from __future__ import annotations

import pytest

from bcconnect.conformance import Outcome, Severity, console_summary, run_pack
from support.conformance_target import FhirTarget

pytestmark = pytest.mark.anyio

#: error-severity checks our endpoint fails today, with the reason (the check is right; the server is not yet)
KNOWN_GAPS: dict[str, str] = {
    "srv.search.date-period": "a day-precision le/ge compares with the start of the day, so a period that starts "
    "(or ends) later that day is missed (R4 3.1.1.5.2: the search value is a range)",
    "srv.search.id": "the person (golden) Patient that Observations now reference can be read but not searched",
    "srv.search.include": "_include=Observation:subject adds the source Patient, not the person Patient the "
    "subject reference names",
    "srv.search.unknown-param-lenient": "the self link repeats parameters the server ignored",
    "srv.smart.discovery": "/.well-known/smart-configuration is not served yet (SMART discovery is being built)",
    "ig.restricted-hidden": "_include=Patient:general-practitioner adds the GP of a restricted patient",
    "ig.restricted-not-filterable": "address and address-postalcode filters find a restricted patient by the "
    "address the answer hides",
}


async def test_our_endpoint_passes_the_server_pack(fhir_target: FhirTarget) -> None:
    """Every error-severity check passes or is a named gap; the profile checks ran with their fixture people."""
    report = await run_pack("server", fhir_target.base, fhir_target.options())
    outcomes = {r.check.id: r.outcome for r in report.results}
    failing = {r.check.id for r in report.results if r.blocking}
    print(console_summary(report, verbose=True))
    assert failing <= set(KNOWN_GAPS), console_summary(report)
    # the profile and auth checks ran with their fixture people and token (a verdict, not n/a)
    assert outcomes["ig.objector-invisible"] is Outcome.PASS, console_summary(report)
    assert outcomes["srv.auth.negatives"] is Outcome.PASS, console_summary(report)
    for check_id in ("ig.restricted-hidden", "ig.restricted-not-filterable"):
        assert outcomes[check_id] in (Outcome.PASS, Outcome.FAIL), console_summary(report)
    not_applicable = [
        r.check.id for r in report.results if r.outcome is Outcome.NOT_APPLICABLE and r.check.severity is Severity.ERROR
    ]
    assert not not_applicable, console_summary(report)
