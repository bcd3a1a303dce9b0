"""The HTML report a person reads, opened in headless Chromium: verdict, counts, failures first and open,
each check's why, specification link and request/response excerpts; the page needs nothing from the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.conformance import Outcome, run_pack, write_reports
from support.chromium import CHROMIUM_ARGS, chromium_executable
from support.conformance_target import FhirTarget
from support.loopback import Exchange, Mutation, breaking_proxy

pytestmark = pytest.mark.anyio
CHECKS = ["srv.capability.statement", "srv.read", "srv.smart.discovery", "ig.read-only", "srv.match"]


def _drop_token_endpoint(ex: Exchange) -> None:
    if ex.path.endswith("/.well-known/smart-configuration") and ex.status == 200:
        ex.set_json({k: v for k, v in ex.json().items() if k != "token_endpoint"})


async def test_the_html_report_reads_right_in_a_browser(fhir_target: FhirTarget, tmp_path: Path) -> None:
    chromium = chromium_executable()
    from playwright.async_api import async_playwright

    async with breaking_proxy(fhir_target.origin) as proxy:
        # our endpoint passes every check: a proxy drops the discovery document's token_endpoint, so the page
        # has a failure to show first
        proxy.mutation = Mutation("discovery without token_endpoint", after=_drop_token_endpoint)
        report = await run_pack("server", f"{proxy.public}/fhir", fhir_target.options(), only=CHECKS)
    failed = [r.check.id for r in report.results if r.outcome is Outcome.FAIL]
    assert failed == ["srv.smart.discovery"]
    page_path = write_reports(report, tmp_path)["html"]
    requests: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(page_path.as_uri())
            assert (await page.inner_text("#verdict")).startswith("FAIL — 1 error-severity check")
            assert await page.inner_text("[data-count='pass'] b") == "4"
            assert await page.inner_text("[data-count='fail'] b") == "1"
            checks = page.locator("details.check")
            assert await checks.count() == len(CHECKS)
            first = checks.first
            assert await first.get_attribute("data-check-id") == "srv.smart.discovery"
            assert await first.get_attribute("open") is not None  # failures open, passes folded
            assert await checks.nth(1).get_attribute("open") is None
            text = await first.inner_text()
            assert "Why: " in text  # the reason the check failed, in words
            assert "GET http://127.0.0.1" in text
            assert "What it judges: When the CapabilityStatement declares SMART-on-FHIR" in text
            assert ".well-known/smart-configuration" in text
            link = first.locator("a")
            assert (await link.get_attribute("href") or "").startswith("https://hl7.org/fhir/smart-app-launch/")
            # credentials never reach the report
            assert fhir_target.token not in await page.content()
            assert "…(redacted)" in await page.content()
        finally:
            await browser.close()
    assert requests == [page_path.as_uri()], f"the report fetched more than itself: {requests}"
