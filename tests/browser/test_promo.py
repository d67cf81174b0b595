"""Promo codes: an operator creates one, an admin redeems it in the console."""

from __future__ import annotations

import uuid

from playwright.async_api import Page, expect

from tests.browser.conftest import Gql, unique_email
from tests.browser.helpers import screenshot, sign_in

CREATE = """mutation($input: CreatePromoCodeInput!) { createPromoCode(input: $input) {
  errors { code message } } }"""


async def test_redeem_a_promo_code(page: Page, gql: Gql, operator_token: str) -> None:
    code = f"LAUNCH{uuid.uuid4().hex[:6].upper()}"
    data = await gql(CREATE, {"input": {"code": code, "amount": "15.00"}}, token=operator_token)
    assert data["createPromoCode"]["errors"] == []

    await sign_in(page, unique_email("promo"))
    promo = page.get_by_test_id("promo-card")
    await promo.get_by_test_id("promo-code").fill("NO-SUCH-CODE")
    await promo.get_by_test_id("promo-submit").click()
    await expect(promo.get_by_test_id("error-code")).to_have_attribute(
        "data-code", "PROMO_CODE_INVALID"
    )

    await promo.get_by_test_id("promo-code").fill(code)
    await promo.get_by_test_id("promo-submit").click()
    await expect(promo.get_by_test_id("form-notice")).to_contain_text("$15.00")
    await expect(page.get_by_test_id("balance-promotional")).to_have_text("$15.00")
    await expect(page.get_by_test_id("balance-total")).to_have_text("$15.00")
    await screenshot(page, "20-credits-promo-redeemed")

    await promo.get_by_test_id("promo-code").fill(code)
    await promo.get_by_test_id("promo-submit").click()
    await expect(promo.get_by_test_id("error-code")).to_have_attribute(
        "data-code", "PROMO_CODE_ALREADY_REDEEMED"
    )
