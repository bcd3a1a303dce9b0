"""The cohorts page in headless Chromium (OS package, driven by playwright) against `bcconnect serve`: sign in,
see every cohort's size and the removed-by-opt-out column, pick a cohort, read its borough chart (SVG) whose
numbers add up to the cohort, and find each page view in the audit trail.

Screenshots are kept in ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import pytest

from bcconnect.cohorts import cohort_member_person_ids
from bcconnect.security import count_audit_events
from support.chromium import ARTIFACTS, CHROMIUM_ARGS, chromium_executable

from .conftest import Served

pytestmark = pytest.mark.anyio


async def test_a_planner_reads_cohort_sizes_by_borough_and_practice(served: Served) -> None:
    """Overview table, cohort selector, the SVG charts, the practice table; two page views, two AuditEvents."""
    executable = chromium_executable()
    from playwright.async_api import async_playwright

    store = served.world.store
    ltc = await cohort_member_person_ids(served.world.view, "ltc-3plus")
    emergency = await cohort_member_person_ids(served.world.view, "emergency-3plus")
    assert ltc
    assert emergency
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{served.base}/app/cohorts")
            assert "/app/login" in page.url  # not signed in: sent to the sign-in form
            await page.fill("#token", served.token())
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            assert "/app/cohorts" in page.url, (page.url, (await page.content())[:2000])
            before = await store.read(count_audit_events)
            await page.reload()
            overview = page.locator("table:has(caption:has-text('Cohorts'))")
            row = overview.locator("tr:has-text('Three or more long-term conditions')")
            assert (await row.locator("td").nth(1).inner_text()).strip() == str(len(ltc))
            assert await overview.locator("th:has-text('Removed by the national data opt-out')").count() == 1
            await page.select_option("#cohort", "emergency-3plus")
            async with page.expect_navigation():
                await page.click("form.filters button[type=submit]")
            assert "cohort=emergency-3plus" in page.url
            chart = page.locator("figure.chart").first
            assert await chart.locator("svg[role=img]").count() == 1
            label = await chart.locator("svg").get_attribute("aria-label") or ""
            numbers = [int(part.rsplit(" ", 1)[1]) for part in label.split(": ", 1)[1].split("; ")]
            assert sum(numbers) == len(emergency)
            practice_rows = page.locator("table:has(caption:has-text('every practice')) tbody tr")
            counted = [
                int(await practice_rows.nth(i).locator("td").nth(1).inner_text())
                for i in range(await practice_rows.count())
            ]
            assert sum(counted) == len(emergency)
            await page.screenshot(path=str(ARTIFACTS / "cohorts.png"), full_page=True)
        finally:
            await browser.close()
    after = await store.read(count_audit_events)
    assert after - before == 2  # the reload and the chosen cohort: each page view is one AuditEvent
