"""Notification settings: admins edit them (errors beside their fields), members read them."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import unique_email
from tests.browser.helpers import open_page, screenshot, sign_in


async def test_admin_sets_who_is_emailed_and_when(page: Page) -> None:
    await sign_in(page, unique_email("notify"))
    await open_page(page, "notifications")
    form = page.get_by_test_id("notifications-form")
    await form.get_by_test_id("notifications-thresholds").fill("50, 120")
    await form.get_by_test_id("notifications-low").fill("abc")
    await form.get_by_test_id("notifications-submit").click()
    # Both problems at once, each beside its own field, before anything is sent.
    await expect(form.get_by_test_id("error-invoicedLimitThresholds")).to_be_visible()
    await expect(form.get_by_test_id("error-lowBalanceThreshold")).to_have_attribute(
        "data-code", "INVALID_AMOUNT"
    )
    await screenshot(page, "50-notifications-errors")

    await form.get_by_test_id("notifications-emails").fill("billing@example.com\nops@example.com")
    await form.get_by_test_id("notifications-thresholds").fill("100, 50")
    await form.get_by_test_id("notifications-low").fill("20")
    await form.get_by_test_id("notifications-submit").click()
    await expect(form.get_by_test_id("form-notice")).to_contain_text("saved")
    await page.reload()
    form = page.get_by_test_id("notifications-form")
    await expect(form.get_by_test_id("notifications-emails")).to_have_value(
        "billing@example.com\nops@example.com"
    )
    await expect(form.get_by_test_id("notifications-thresholds")).to_have_value("50, 100")
    await expect(form.get_by_test_id("notifications-low")).to_have_value("20.00")
    await screenshot(page, "51-notifications-saved")

    # A malformed address is the server's to refuse: beside the field, by its code.
    await form.get_by_test_id("notifications-emails").fill("not-an-email")
    await form.get_by_test_id("notifications-submit").click()
    await expect(form.get_by_test_id("error-emails")).to_be_visible()
