"""Auto top-up and billing alerts, end to end in the console."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import Gql, unique_email
from tests.browser.helpers import add_card, open_page, screenshot, sign_in

GRANT = """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
  errors { code message } } }"""
USAGE = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) {
  errors { code message } } }"""


async def test_auto_top_up_needs_a_card_then_tops_up_live(page: Page) -> None:
    await sign_in(page, unique_email("topup"))
    form = page.get_by_test_id("auto-top-up-form")
    await form.get_by_test_id("auto-top-up-enabled").check(force=True)
    await form.locator("input[name=threshold]").fill("10")
    await form.locator("input[name=amount]").fill("25")
    await form.locator("input[name=monthlyLimit]").fill("100")
    await form.get_by_test_id("auto-top-up-submit").click()
    await expect(form.get_by_test_id("error-enabled")).to_have_attribute(
        "data-code", "PAYMENT_METHOD_REQUIRED"
    )
    # A cap below one top-up is refused next to the cap.
    await form.locator("input[name=monthlyLimit]").fill("20")
    await form.get_by_test_id("auto-top-up-submit").click()
    await expect(form.get_by_test_id("error-monthlyLimit")).to_be_visible()

    await add_card(page)
    await open_page(page, "credits")
    form = page.get_by_test_id("auto-top-up-form")
    await form.get_by_test_id("auto-top-up-enabled").check(force=True)
    await form.locator("input[name=threshold]").fill("10")
    await form.locator("input[name=amount]").fill("25")
    await form.locator("input[name=monthlyLimit]").fill("100")
    await form.get_by_test_id("auto-top-up-submit").click()
    await expect(form.get_by_test_id("form-notice")).to_contain_text("on")
    # The balance ($0) is below the threshold: a top-up runs and the balance follows live.
    await expect(page.get_by_test_id("balance-total")).to_have_text("$25.00")
    await expect(page.get_by_test_id("balance-prepaid")).to_have_text("$25.00")
    await screenshot(page, "21-credits-auto-top-up")


async def test_alerts_arrive_live(page: Page, gql: Gql, operator_token: str) -> None:
    team_id = await sign_in(page, unique_email("alerts"))
    alerts = page.get_by_test_id("alerts")
    await expect(alerts.get_by_test_id("empty-state")).to_be_visible()
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", "live")
    data = await gql(GRANT, {"input": {"teamId": team_id, "amount": "2.00"}}, token=operator_token)
    assert data["grantCredits"]["errors"] == []
    await expect(page.get_by_test_id("balance-total")).to_have_text("$2.00")
    data = await gql(
        USAGE,
        {"input": {"teamId": team_id, "amount": "2.00", "idempotencyKey": "drain"}},
        token=operator_token,
    )
    assert data["recordUsage"]["errors"] == []
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")
    await expect(alerts.locator("li")).to_have_count(1)
    # The kind in words, not its enum name.
    await expect(alerts.get_by_test_id("alert")).to_have_attribute("data-kind", "CREDITS_EXHAUSTED")
    await expect(alerts).to_contain_text("Credits used up")
    await expect(page.get_by_test_id("billing-status")).to_contain_text("exhausted")
    await screenshot(page, "22-credits-alert")
