"""Bank transfer end to end in the console, at desktop (1280 px) and phone (390 px) widths:
a bank account added through Stripe.js (the emulator's copy, instant verification), a
purchase shown PROCESSING and credited when the debit settles, and one from Stripe's failing
test account shown FAILED and never credited. The emulator settles debits after
EMULATOR_ACH_SETTLE_SECONDS (default 10 s)."""

from __future__ import annotations

import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import unique_email
from tests.browser.helpers import open_page, screenshot, sign_in

SETTLES_WITHIN_MS = 45_000  # the settlement delay, the webhook's second, a refetch, a busy machine
WIDTHS = [1280, 390]


async def fill_bank_account(form: Locator, account_number: str) -> None:
    await form.get_by_test_id("bank-holder").fill("Ada Lovelace")
    await form.get_by_test_id("bank-routing").fill("110000000")
    await form.get_by_test_id("bank-account-number").fill(account_number)


async def buy_by_bank_transfer(page: Page, amount: str) -> Locator:
    buy = page.get_by_test_id("buy-credits")
    await buy.get_by_test_id("buy-amount").fill(amount)
    await buy.get_by_test_id("buy-submit").click()
    await expect(buy.get_by_test_id("form-notice")).to_contain_text(
        f"Bank transfer of ${amount} started"
    )
    return page.get_by_test_id("purchases").locator("tbody tr").first


@pytest.mark.parametrize("width", WIDTHS)
async def test_bank_transfer_is_processing_then_credited(page: Page, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    await sign_in(page, unique_email(f"ach-{width}"), "Ada Lovelace")

    # Payment page: add a bank account (routing + account number, verified at once).
    await open_page(page, "payment")
    await page.get_by_test_id("add-bank-account").click()
    form = page.get_by_test_id("bank-account-form")
    # A slip is answered next to its input, before anything reaches Stripe.
    await form.get_by_test_id("bank-routing").fill("12345")
    await form.get_by_test_id("save-bank-account").click()
    await expect(form.get_by_test_id("error-routingNumber")).to_be_visible()
    await expect(form.get_by_test_id("error-accountNumber")).to_be_visible()
    await screenshot(page, f"60-bank-account-form-errors-{width}")
    await fill_bank_account(form, "000123456789")
    await form.get_by_test_id("save-bank-account").click()
    row = page.get_by_test_id("payment-method")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("6789")
    await expect(row).to_contain_text("Bank account (ACH)")
    await expect(row).to_contain_text("Default")
    await screenshot(page, f"61-bank-account-added-{width}")

    # Credits: pay by bank transfer; PROCESSING, nothing credited yet.
    await open_page(page, "credits")
    await (
        page.get_by_test_id("buy-credits")
        .get_by_role("radio", name="Bank transfer", exact=True)
        .click()
    )
    purchase = await buy_by_bank_transfer(page, "50.00")
    await expect(purchase).to_contain_text("Processing")
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")
    await screenshot(page, f"62-bank-transfer-processing-{width}")

    # The debit settles: the purchase turns SUCCEEDED and the balance shows the credits,
    # without reloading the page.
    await expect(purchase).to_have_attribute("data-status", "SUCCEEDED", timeout=SETTLES_WITHIN_MS)
    await expect(purchase).to_contain_text("Paid")
    await expect(page.get_by_test_id("balance-total")).to_have_text("$50.00")
    await expect(page.get_by_test_id("balance-prepaid")).to_have_text("$50.00")
    await screenshot(page, f"63-bank-transfer-credited-{width}")


@pytest.mark.parametrize("width", WIDTHS)
async def test_failed_bank_transfer_is_never_credited(page: Page, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    await sign_in(page, unique_email(f"ach-fail-{width}"))

    # No bank account yet: the Buy form's bank transfer path offers to add one in place.
    await open_page(page, "credits")
    buy = page.get_by_test_id("buy-credits")
    await buy.get_by_role("radio", name="Bank transfer", exact=True).click()
    await buy.get_by_test_id("add-bank-account").click()
    form = buy.get_by_test_id("bank-account-form")
    await fill_bank_account(form, "000111111113")  # Stripe's test account that is closed
    await form.get_by_test_id("save-bank-account").click()
    await expect(form).to_have_count(0)
    await expect(buy.locator(".choice")).to_contain_text("1113")
    await expect(buy.locator(".choice input")).to_be_checked()

    purchase = await buy_by_bank_transfer(page, "30.00")
    await expect(purchase).to_contain_text("Processing")
    await screenshot(page, f"64-bank-transfer-failing-processing-{width}")

    await expect(purchase).to_contain_text("Failed", timeout=SETTLES_WITHIN_MS)
    await expect(purchase).to_contain_text("bank account has been closed")
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")
    await page.reload()  # and after a fresh load, still nothing credited
    await expect(page.get_by_test_id("purchases").locator("tbody tr").first).to_contain_text(
        "Failed"
    )
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")
    await screenshot(page, f"65-bank-transfer-failed-{width}")
