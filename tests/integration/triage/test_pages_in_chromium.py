"""The triage pages in headless Chromium (OS package, driven by playwright) against `bcconnect serve`:
sign in, pick a network, open a referral, see another trust's encounter in its context; then the waiting list.

Screenshots are kept in ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import pytest

from bcconnect.triage import Triage
from bcconnect.view import OPEN_ACCESS
from support.chromium import ARTIFACTS, CHROMIUM_ARGS, chromium_executable

from .conftest import Served

pytestmark = pytest.mark.anyio


async def _a_referral_with_context_elsewhere(served: Served) -> tuple[str, int, str, str]:
    """(network, position in its worklist, the referral's trust, another trust with an encounter)."""
    triage = Triage(served.world.view)
    for network in triage.config.networks:
        items = await triage.worklist(OPEN_ACCESS, network, as_of=served.world.as_of)
        for n, item in enumerate(items):
            context = item.context
            if context is None:
                continue
            for contact in context.contacts:
                other = next((t for t in contact.trusts if t != item.referral.trust), None)
                if other:
                    return network, n, item.referral.trust, other
    pytest.fail("the world has no referral whose person has an encounter at another trust")


async def test_a_triager_opens_a_referral_and_sees_another_trusts_encounter(served: Served) -> None:
    """Keyboard and mouse path of a triager through the worklist; the context names the other trust."""
    executable = chromium_executable()
    from playwright.async_api import async_playwright

    network, position, trust, other = await _a_referral_with_context_elsewhere(served)
    ARTIFACTS.mkdir(exist_ok=True)
    as_of = served.world.as_of.isoformat()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{served.base}/app/worklist?as-of={as_of}")
            assert "/app/login" in page.url  # not signed in: sent to the sign-in form
            await page.fill("#token", served.token())
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            assert "/app/worklist" in page.url, (page.url, (await page.content())[:2000])
            await page.select_option("#network", network)
            await page.click("form.filters button[type=submit]")
            await page.wait_for_selector("details")
            summary = page.locator(f"#referral-{position} > summary")
            await summary.focus()
            await page.keyboard.press("Enter")  # <details> opens from the keyboard, no script involved
            body = page.locator(f"#referral-{position} .details__body")
            await body.wait_for()
            contacts = body.locator("h3:has-text('Recent contacts') + table")
            assert await contacts.locator(f".tag:has-text('{other}')").count() >= 1
            assert await page.locator(f"#referral-{position} > summary .tag:has-text('{trust}')").count() >= 1
            await page.screenshot(path=str(ARTIFACTS / "triage-worklist-context.png"), full_page=True)

            await page.click("nav >> text=Waiting list")
            await page.wait_for_url("**/app/waiting-list**")
            await page.goto(f"{served.base}/app/waiting-list?as-of={as_of}")
            assert await page.locator("figure.chart svg[role=img]").count() >= 3
            assert "Within 18 weeks" in await page.content()
            await page.screenshot(path=str(ARTIFACTS / "waiting-list.png"), full_page=True)

            timeline = page.locator("a:has-text('timeline')").first
            if await timeline.count():
                await timeline.click()
                await page.wait_for_url("**/app/person/**")
                assert "Timeline" in await page.title()
                await page.screenshot(path=str(ARTIFACTS / "person-timeline.png"), full_page=True)
        finally:
            await browser.close()
