"""What a person does in the console, as functions the browser tests share."""

from __future__ import annotations

import re
import time

from playwright.async_api import Page, expect

from tests.browser.harness import SCREENS

TEAM_URL = re.compile(
    r"/t/([^/]+)/(credits|payment|invoices|members|notifications|activity|api-keys)$"
)


async def sign_in(page: Page, email: str, name: str | None = None) -> str:
    """Development sign-in through the form; returns the team id the console opened."""
    await page.goto("/")
    await page.get_by_label("Email").fill(email)
    if name:
        await page.get_by_label("Name (optional)").fill(name)
    await page.get_by_test_id("sign-in-submit").click()
    await expect(page.get_by_test_id("balance-total")).to_be_visible()
    match = TEAM_URL.search(page.url)
    assert match, page.url
    return match.group(1)


async def open_page(page: Page, name: str) -> None:
    """Navigate with the sidebar (its menu opened first on a narrow screen) and wait until
    no section is loading."""
    link = page.get_by_test_id(f"nav-{name}")
    if not await link.is_visible():
        await page.get_by_test_id("menu-toggle").click()
    await link.click()
    await expect(page).to_have_url(re.compile(rf"/{name}$"))
    await settled(page)


async def settled(page: Page) -> None:
    await expect(page.locator("main [data-testid=loading]")).to_have_count(0)


async def screenshot(page: Page, name: str) -> None:
    await settled(page)
    # The sidebar is sticky: from the top, a full-page capture shows it where a person would.
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


async def fill_card(page: Page, number: str = "4242424242424242", scope: str = "") -> None:
    """Types into the Stripe.js card element (the emulator's copy of Stripe.js)."""
    card = page.locator(f"{scope} [data-testid=card-input]".strip())
    await expect(card).to_have_attribute("data-state", "ready")
    await card.locator("input[placeholder=number]").fill(number)
    await card.locator("input[placeholder=exp_month]").fill("12")
    await card.locator("input[placeholder=exp_year]").fill("34")
    await card.locator("input[placeholder=cvc]").fill("123")
    await card.locator("input[placeholder=postal_code]").fill("10001")


async def add_card(page: Page, number: str = "4242424242424242") -> None:
    """Payment page: Add card, type it into Stripe.js, save; waits for its row."""
    await open_page(page, "payment")
    before = await page.get_by_test_id("payment-method").count()
    await page.get_by_test_id("add-card").click()
    await fill_card(page, number, "[data-testid=add-card-form]")
    await page.get_by_test_id("save-card").click()
    await expect(page.get_by_test_id("payment-method")).to_have_count(before + 1)


async def reload_until(page: Page, selector: str, count: int, seconds: float = 20.0) -> None:
    """Reload until `selector` matches `count` elements (for state a webhook settles)."""
    deadline = time.monotonic() + seconds
    while True:
        await settled(page)
        if await page.locator(selector).count() >= count or time.monotonic() > deadline:
            break
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(page.locator(selector)).to_have_count(count)
