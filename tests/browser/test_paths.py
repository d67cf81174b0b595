"""Paths a new user took that used to end wrong, each at desktop and phone width.

Each test runs at 1280 px and at 390 px (`width`), with screenshots of both.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Page, Request, expect

from tests.browser.conftest import Gql, unique_email
from tests.browser.harness import Server
from tests.browser.helpers import add_card, fill_card, open_page, screenshot, settled, sign_in

GRANT = """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
  errors { code message } } }"""
USAGE = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) {
  errors { code message } } }"""

WIDTHS = [pytest.param(1280, id="1280"), pytest.param(390, id="390")]


async def at_width(page: Page, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900 if width > 600 else 844})


def graphql_calls(page: Page, operation: str) -> list[Request]:
    """Requests for one named operation, recorded from now on."""
    seen: list[Request] = []
    page.on(
        "request",
        lambda request: (
            seen.append(request)
            if request.url.endswith("/graphql") and f"{operation}(" in (request.post_data or "")
            else None
        ),
    )
    return seen


@pytest.mark.parametrize("width", WIDTHS)
async def test_buying_again_after_a_new_card_pays_with_the_saved_card(
    page: Page, width: int
) -> None:
    await at_width(page, width)
    await sign_in(page, unique_email("again"))
    buy = page.get_by_test_id("buy-credits")
    # No card on file: "New card" is chosen; it pays and is saved.
    await expect(buy.get_by_test_id("buy-new-card")).to_be_checked()
    await buy.get_by_test_id("buy-amount").fill("10")
    await fill_card(page, "4242424242424242", "[data-testid=buy-form]")
    await buy.get_by_test_id("buy-submit").click()
    await expect(buy.get_by_test_id("form-notice")).to_contain_text("$10.00")
    # The saved card is now selected and the card entry is gone: Buy again pays with it.
    saved = buy.locator("label.choice", has_text="4242").locator("input")
    await expect(saved).to_be_checked()
    await expect(buy.get_by_test_id("card-input")).to_have_count(0)
    await screenshot(page, f"30-buy-again-{width}")
    setups = graphql_calls(page, "createSetupIntent")
    await buy.get_by_test_id("buy-submit").click()
    await expect(page.get_by_test_id("balance-total")).to_have_text("$20.00")
    assert setups == []
    await open_page(page, "payment")
    await expect(page.get_by_test_id("payment-method")).to_have_count(1)


@pytest.mark.parametrize("width", WIDTHS)
async def test_words_not_raw_text_and_amount_checked_first(page: Page, width: int) -> None:
    await at_width(page, width)
    await sign_in(page, unique_email("words"))
    buy = page.get_by_test_id("buy-credits")
    await expect(buy.get_by_test_id("card-input")).to_have_attribute("data-state", "ready")
    setups = graphql_calls(page, "createSetupIntent")

    # Not a number: refused beside the amount before any card is set up.
    await buy.get_by_test_id("buy-amount").fill("abc")
    await buy.get_by_test_id("buy-submit").click()
    amount_error = buy.get_by_test_id("error-amount")
    await expect(amount_error).to_have_attribute("data-code", "INVALID_AMOUNT")
    await expect(amount_error).to_contain_text("Enter an amount in dollars")

    # An empty card: said in words, before any request.
    await buy.get_by_test_id("buy-amount").fill("10")
    await buy.get_by_test_id("buy-submit").click()
    card_error = buy.get_by_test_id("error-card")
    await expect(card_error).to_have_attribute("data-code", "CARD_INCOMPLETE")
    await expect(card_error).to_contain_text("Enter the card number")
    assert setups == []
    await screenshot(page, f"31-buy-words-{width}")

    # A 4-digit expiry year: the card is refused, in words (never "Bad request").
    card = buy.get_by_test_id("card-input")
    await card.locator("input[placeholder=number]").fill("4242424242424242")
    await card.locator("input[placeholder=exp_month]").fill("12")
    await card.locator("input[placeholder=exp_year]").fill("2034")
    await card.locator("input[placeholder=cvc]").fill("123")
    await buy.get_by_test_id("buy-submit").click()
    await expect(card_error).to_have_attribute("data-code", "CARD_DECLINED")
    await expect(card_error).to_contain_text("expiry date")
    text = await buy.inner_text()
    for raw in ("Bad request", "Cannot read properties", "not a decimal number", "undefined"):
        assert raw not in text
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_failed_first_top_up_shows_paused_without_a_reload(page: Page, width: int) -> None:
    await at_width(page, width)
    await sign_in(page, unique_email("paused"))
    # A card that saves fine but whose charges are declined.
    await add_card(page, "4000000000000341")
    await open_page(page, "credits")
    form = page.get_by_test_id("auto-top-up-form")
    await form.get_by_test_id("auto-top-up-enabled").check(force=True)
    await form.locator("input[name=threshold]").fill("10")
    await form.locator("input[name=amount]").fill("25")
    await form.locator("input[name=monthlyLimit]").fill("100")
    await form.get_by_test_id("auto-top-up-submit").click()
    # The balance ($0) is below the threshold: the first charge fails in the background.
    await expect(form.get_by_test_id("auto-top-up-paused")).to_be_visible()
    await expect(form.get_by_test_id("form-notice")).to_have_count(0)
    await expect(page.get_by_test_id("alerts").get_by_test_id("alert")).to_contain_text(
        "Auto top-up failed"
    )
    await expect(page.get_by_test_id("alerts")).to_contain_text("Auto top-up of $25.00 failed")
    await screenshot(page, f"32-auto-top-up-paused-{width}")


@pytest.mark.parametrize("width", WIDTHS)
async def test_lists_follow_background_work(page: Page, width: int) -> None:
    """3-D Secure finishing, and an auto top-up: the lists update without a reload."""
    await at_width(page, width)
    await sign_in(page, unique_email("stale"))
    buy = page.get_by_test_id("buy-credits")
    await buy.get_by_test_id("buy-amount").fill("15")
    await fill_card(page, "4000002500003155", "[data-testid=buy-form]")
    await buy.get_by_test_id("buy-submit").click()
    # The bank asks twice: once to save the card, once for the payment.
    for _ in range(2):
        await page.get_by_role("button", name="Complete authentication").click()
    await expect(page.get_by_test_id("balance-total")).to_have_text("$15.00")
    purchases = page.get_by_test_id("purchases").get_by_test_id("purchase-row")
    await expect(purchases).to_have_count(1)
    await expect(purchases.first).to_have_attribute("data-status", "SUCCEEDED")
    # The card saved by that purchase is in the picker, chosen.
    await expect(buy.locator("label.choice", has_text="3155").locator("input")).to_be_checked()

    await screenshot(page, f"33-lists-follow-3ds-{width}")


@pytest.mark.parametrize("width", WIDTHS)
async def test_auto_top_up_purchases_appear_without_a_reload(page: Page, width: int) -> None:
    await at_width(page, width)
    await sign_in(page, unique_email("topped"))
    await add_card(page)
    await open_page(page, "credits")
    purchases = page.get_by_test_id("purchases").get_by_test_id("purchase-row")
    await expect(purchases).to_have_count(0)
    # Auto top-up (its threshold above the balance): its purchase appears by itself.
    form = page.get_by_test_id("auto-top-up-form")
    await form.get_by_test_id("auto-top-up-enabled").check(force=True)
    await form.locator("input[name=threshold]").fill("20")
    await form.locator("input[name=amount]").fill("25")
    await form.locator("input[name=monthlyLimit]").fill("100")
    await form.get_by_test_id("auto-top-up-submit").click()
    await expect(page.get_by_test_id("balance-total")).to_have_text("$25.00")
    await expect(purchases).to_have_count(1)
    await expect(purchases.first).to_have_attribute("data-status", "SUCCEEDED")
    await screenshot(page, f"33-lists-follow-top-up-{width}")


@pytest.mark.parametrize("width", WIDTHS)
async def test_an_unknown_team_gets_one_clear_page(page: Page, width: int, server: Server) -> None:
    await at_width(page, width)
    email = unique_email("lost")
    await sign_in(page, email)
    missing = str(uuid.uuid4())
    await page.goto(f"/t/{missing}/credits")
    await expect(page.get_by_test_id("team-missing")).to_be_visible()
    await expect(page.get_by_test_id("error-state")).to_have_count(1)
    await expect(page.get_by_test_id("error-state")).to_have_attribute("data-code", "NOT_FOUND")
    await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    await expect(page.locator("[data-testid=loading]")).to_have_count(0)
    await expect(page.get_by_test_id("live-status")).to_have_count(0)
    switcher = page.get_by_test_id("team-switcher")
    await expect(switcher.locator("option:checked")).to_have_text("Choose a team")
    await screenshot(page, f"34-unknown-team-{width}")
    # A way back to a real team.
    await page.get_by_role("link", name=re.compile("^Go to ")).click()
    await expect(page.get_by_test_id("balance-total")).to_be_visible()

    # The widget: the team is not found, and nothing claims to be live.
    token = server.token(email)
    await page.goto(f"/widget.html?team={missing}&token={token}")
    widget = page.locator("creditline-balance")
    await expect(widget.locator("[part=error]")).to_have_text("This team was not found.")
    await expect(widget.locator(".state")).to_have_attribute("data-state", "off")
    await expect(widget.locator(".live")).to_have_count(0)


@pytest.mark.parametrize("width", WIDTHS)
async def test_money_and_alerts_read_in_words(
    page: Page, width: int, gql: Gql, operator_token: str
) -> None:
    await at_width(page, width)
    team_id = await sign_in(page, unique_email("money"))
    await add_card(page)
    await open_page(page, "credits")
    limit = page.get_by_test_id("limit-card")
    await limit.get_by_test_id("limit-input").fill("10")
    await limit.get_by_test_id("limit-submit").click()
    await expect(limit.get_by_test_id("form-notice")).to_be_visible()
    data = await gql(GRANT, {"input": {"teamId": team_id, "amount": "100"}}, token=operator_token)
    assert data["grantCredits"]["errors"] == []
    data = await gql(
        USAGE,
        {"input": {"teamId": team_id, "amount": "42.12345678", "idempotencyKey": "m-1"}},
        token=operator_token,
    )
    assert data["recordUsage"]["errors"] == []
    # Dollars and cents in the headline; the exact amount on hover.
    total = page.get_by_test_id("balance-total")
    await expect(total).to_have_text("$57.88")
    await expect(total).to_have_attribute("title", "$57.87654322 exactly")
    await expect(page.get_by_test_id("sidebar-balance")).to_contain_text("$57.88")

    # Past the credits into invoiced usage: 80% of the $10.00 limit raises an alert.
    data = await gql(
        USAGE,
        {"input": {"teamId": team_id, "amount": "66.00", "idempotencyKey": "m-2"}},
        token=operator_token,
    )
    assert data["recordUsage"]["errors"] == []
    alert = page.get_by_test_id("alerts").locator("[data-kind=INVOICED_LIMIT_80]")
    await expect(alert).to_contain_text("Near the spending limit")
    await expect(alert).to_contain_text(
        re.compile(r"for [A-Z][a-z]+ \d{4} reached 80% of the \$10\.00")
    )
    await expect(alert).not_to_contain_text("Invoiced Limit")
    await screenshot(page, f"35-money-words-{width}")

    # The month so far reads as a month, not "Dec 1 - Jan 1".
    await open_page(page, "invoices")
    period = page.get_by_test_id("upcoming-period")
    await expect(period).to_have_text(re.compile(r"^[A-Z][a-z]+ \d{4}$"))
    await settled(page)
