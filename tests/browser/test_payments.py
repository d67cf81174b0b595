"""Cards through Stripe.js (the emulator's copy), buying credits, the last card, invoice PDFs."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import Gql, unique_email
from tests.browser.helpers import add_card, fill_card, open_page, reload_until, screenshot, sign_in

USAGE = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) {
  errors { code message } } }"""
GRANT = """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
  errors { code message } } }"""


async def test_add_card_and_buy_credits(page: Page) -> None:
    await sign_in(page, unique_email("buyer"), "Bea Buyer")
    await add_card(page)
    row = page.get_by_test_id("payment-method")
    await expect(row).to_contain_text("4242")
    await expect(row).to_contain_text("Default")
    await screenshot(page, "10-payment-card-added")

    await open_page(page, "credits")
    buy = page.get_by_test_id("buy-credits")
    # More than 2 decimals: the error sits next to the amount.
    await buy.get_by_test_id("buy-amount").fill("25.001")
    await buy.get_by_test_id("buy-submit").click()
    await expect(buy.get_by_test_id("error-amount")).to_have_attribute(
        "data-code", "INVALID_AMOUNT"
    )

    # The saved default card is preselected.
    await buy.get_by_test_id("buy-amount").fill("25")
    await buy.get_by_test_id("buy-submit").click()
    await expect(buy.get_by_test_id("form-notice")).to_contain_text("$25.00")
    await expect(page.get_by_test_id("balance-total")).to_have_text("$25.00")
    await expect(page.get_by_test_id("balance-prepaid")).to_have_text("$25.00")

    # A new card typed into Stripe.js pays and is saved.
    await buy.get_by_test_id("buy-amount").fill("10.50")
    await buy.get_by_test_id("buy-new-card").check()
    await fill_card(page, "4242424242424242", "[data-testid=buy-form]")
    await buy.get_by_test_id("buy-submit").click()
    await expect(buy.get_by_test_id("form-notice")).to_contain_text("$10.50")
    await expect(page.get_by_test_id("balance-total")).to_have_text("$35.50")
    await expect(page.get_by_test_id("purchases").locator("tbody tr")).to_have_count(2)
    await screenshot(page, "11-credits-after-purchase")
    await open_page(page, "payment")
    await expect(page.get_by_test_id("payment-method")).to_have_count(2)


async def test_declined_card_shows_its_error(page: Page) -> None:
    await sign_in(page, unique_email("declined"))
    await open_page(page, "payment")
    await page.get_by_test_id("add-card").click()
    await fill_card(page, "4000000000000002", "[data-testid=add-card-form]")
    await page.get_by_test_id("save-card").click()
    await expect(page.get_by_test_id("error-card")).to_be_visible()
    await expect(page.get_by_test_id("payment-method")).to_have_count(0)
    await screenshot(page, "12-payment-card-declined")


async def test_removing_the_last_card_shows_its_error(page: Page) -> None:
    await sign_in(page, unique_email("lastcard"))
    await add_card(page)
    row = page.get_by_test_id("payment-method")
    await row.get_by_test_id("remove-method").click()
    # Removing asks first; "Keep" leaves the card alone.
    await row.get_by_test_id("confirm-remove-no").click()
    await expect(row.get_by_test_id("confirm-remove")).to_have_count(0)
    await row.get_by_test_id("remove-method").click()
    await screenshot(page, "13-payment-remove-confirm")
    await row.get_by_test_id("confirm-remove-yes").click()
    error = row.get_by_test_id("payment-method-error")
    await expect(error).to_be_visible()
    await expect(error).to_have_attribute("data-code", "LAST_PAYMENT_METHOD")
    await expect(row).to_have_count(1)
    await screenshot(page, "13-payment-last-card-error")

    # With a second card: make it the default, then the first one can go.
    await add_card(page, "5555555555554444")
    rows = page.get_by_test_id("payment-method")
    first, second = (
        rows.and_(page.locator("[data-last4='4242']")),
        rows.and_(page.locator("[data-last4='4444']")),
    )
    await second.get_by_test_id("make-default").click()
    await expect(second.get_by_test_id("default-badge")).to_be_visible()
    await expect(page.get_by_test_id("default-badge")).to_have_count(1)
    await first.get_by_test_id("remove-method").click()
    await first.get_by_test_id("confirm-remove-yes").click()
    await expect(rows).to_have_count(1)
    await expect(second.get_by_test_id("default-badge")).to_be_visible()


async def test_invoice_pdf_opens(page: Page, context: BrowserContext) -> None:
    await sign_in(page, unique_email("invoice"))
    await add_card(page)
    await open_page(page, "credits")
    buy = page.get_by_test_id("buy-credits")
    await buy.get_by_test_id("buy-amount").fill("20")
    await buy.get_by_test_id("buy-submit").click()
    await expect(page.get_by_test_id("balance-total")).to_have_text("$20.00")

    await open_page(page, "invoices")
    await reload_until(page, "[data-testid=invoice-row]", 1)
    await expect(page.get_by_test_id("invoice-row")).to_contain_text("Credit purchase")
    await expect(page.get_by_test_id("invoice-row")).to_contain_text("$20.00")
    await screenshot(page, "14-invoices")

    async with context.expect_page() as opened:
        await page.get_by_test_id("invoice-pdf").click()
    tab = await opened.value
    response = await context.request.get(tab.url)
    assert response.ok, response.status
    assert response.headers["content-type"].startswith("application/pdf")
    assert (await response.body()).startswith(b"%PDF")
    await tab.close()


async def test_three_d_secure_card_and_purchase(page: Page) -> None:
    """A card whose bank asks for 3-D Secure: Stripe.js shows its challenge twice."""
    await sign_in(page, unique_email("threeds"))
    await open_page(page, "payment")
    await page.get_by_test_id("add-card").click()
    await fill_card(page, "4000002500003155", "[data-testid=add-card-form]")
    await page.get_by_test_id("save-card").click()
    # The emulator's Stripe.js challenge (a dialog it adds to the page).
    await page.get_by_role("button", name="Complete authentication").click()
    await expect(page.get_by_test_id("payment-method")).to_have_count(1)

    await open_page(page, "credits")
    buy = page.get_by_test_id("buy-credits")
    await buy.get_by_test_id("buy-amount").fill("15")
    await buy.get_by_test_id("buy-submit").click()
    await page.get_by_role("button", name="Complete authentication").click()
    await expect(buy.get_by_test_id("form-notice")).to_contain_text("confirmed")
    # Credited when Stripe's webhook reports success; the subscription shows it.
    await expect(page.get_by_test_id("balance-total")).to_have_text("$15.00")


async def test_billing_address_errors_sit_by_their_fields(page: Page) -> None:
    await sign_in(page, unique_email("address"))
    await open_page(page, "payment")
    form = page.get_by_test_id("address-form")
    await form.locator("input[name=name]").fill("Ada Lovelace")
    await form.locator("input[name=city]").fill("Berlin")
    # Required fields are marked; the country is chosen from a list, by name.
    for field in ("name", "line1", "city", "country"):
        await expect(form.get_by_test_id(f"required-{field}")).to_be_visible()
    await expect(form.get_by_test_id("required-organization")).to_have_count(0)
    await page.get_by_test_id("address-submit").click()
    # Several problems at once, each next to its own field.
    await expect(form.get_by_test_id("error-line1")).to_be_visible()
    await expect(form.get_by_test_id("error-country")).to_be_visible()
    await expect(form.get_by_test_id("error-name")).to_have_count(0)
    await screenshot(page, "15-payment-address-errors")

    await form.locator("input[name=line1]").fill("Unter den Linden 1")
    await form.locator("input[name=postalCode]").fill("10117")
    await form.locator("select[name=country]").select_option(label="Germany")
    await form.get_by_label("Tax id value").fill("DE136695976")
    await page.get_by_test_id("address-submit").click()
    await expect(form.get_by_test_id("form-notice")).to_contain_text("saved")
    await page.reload()
    await expect(page.locator("input[name=line1]")).to_have_value("Unter den Linden 1")
    await expect(page.locator("select[name=country]")).to_have_value("DE")
    await expect(page.get_by_label("Tax id value")).to_have_value("DE136695976")
    await add_card(page)
    await screenshot(page, "16-payment-with-address")


async def test_invoiced_usage_under_a_spending_limit(
    page: Page, gql: Gql, operator_token: str
) -> None:
    team_id = await sign_in(page, unique_email("invoiced"))
    limit = page.get_by_test_id("limit-card")
    # No card yet: raising the limit is refused next to the limit.
    await limit.get_by_test_id("limit-input").fill("50")
    await limit.get_by_test_id("limit-submit").click()
    await expect(limit.get_by_test_id("error-limit")).to_have_attribute(
        "data-code", "PAYMENT_METHOD_REQUIRED"
    )
    await add_card(page)
    await open_page(page, "credits")
    limit = page.get_by_test_id("limit-card")
    await limit.get_by_test_id("limit-input").fill("50")
    await limit.get_by_test_id("limit-submit").click()
    await expect(limit.get_by_test_id("form-notice")).to_be_visible()
    await expect(page.get_by_test_id("invoiced-this-month")).to_contain_text("$50.00 limit")

    # $1 of free credits, then $2.25 on the month's invoice: both show live.
    data = await gql(GRANT, {"input": {"teamId": team_id, "amount": "1.00"}}, token=operator_token)
    assert data["grantCredits"]["errors"] == []
    await expect(page.get_by_test_id("balance-total")).to_have_text("$1.00")
    data = await gql(
        USAGE,
        {"input": {"teamId": team_id, "amount": "3.25", "idempotencyKey": "invoiced-1"}},
        token=operator_token,
    )
    assert data["recordUsage"]["errors"] == []
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")
    await expect(page.get_by_test_id("invoiced-this-month")).to_contain_text("$2.25 of $50.00")
    await screenshot(page, "17-credits-invoiced-usage")
    await open_page(page, "invoices")
    await expect(page.get_by_test_id("upcoming-invoice")).to_contain_text("$2.25")
    await screenshot(page, "18-invoices-upcoming")
