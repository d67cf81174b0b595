"""Card purchases against localstripe; bank transfers with recorded Stripe responses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from app.billing import purchases
from app.credits.models import CreditGrant
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import UNITS_PER_DOLLAR
from app.payments import charges
from app.payments.charges import ChargeStatus
from app.payments.emulator import StripeEmulator
from app.payments.models import Purchase, PurchaseStatus
from tests.support.api import Actor, Api, join, sign_up
from tests.support.payments import (
    PURCHASE,
    PURCHASES,
    RECORDED_BANK_PAYMENT_METHOD,
    RecordedAch,
    add_card,
    buy,
    card_payment_method,
    credits_of,
    methods,
    purchases_of,
)


async def test_buy_with_the_default_card(api: Api, admin: Actor) -> None:
    card = await add_card(api, admin)
    payload = await buy(api, admin, "25.00")
    assert payload["errors"] == []
    purchase = payload["purchase"]
    assert purchase["status"] == "SUCCEEDED"
    assert purchase["amount"] == "25.00"
    assert purchase["method"] == "CARD"
    assert purchase["paymentMethod"]["id"] == card["id"]
    assert purchase["paymentIntentId"].startswith("pi_")
    assert purchase["clientSecret"] is None
    assert purchase["settledAt"] is not None
    assert payload["credits"] == {"total": "25.00", "prepaid": "25.00"}
    credits = await credits_of(api, admin)
    assert credits["grants"] == [{"kind": "PREPAID", "amount": "25.00", "remaining": "25.00"}]


async def test_buy_with_a_new_card_keeps_it_on_file(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator
) -> None:
    payload = await buy(api, admin, "10.50", spm="pm_card_visa")
    assert payload["errors"] == []
    assert payload["purchase"]["status"] == "SUCCEEDED"
    saved = await methods(api, admin)
    assert len(saved) == 1
    assert saved[0]["isDefault"] is True
    assert payload["purchase"]["paymentMethod"]["id"] == saved[0]["id"]
    # A second new card is kept too, not as default.
    pm = await card_payment_method(stripe_emulator.url, "5555555555554444")
    payload = await buy(api, admin, "5.00", spm=pm)
    assert payload["purchase"]["status"] == "SUCCEEDED"
    saved = await methods(api, admin)
    assert [(m["last4"], m["isDefault"]) for m in saved] == [("4242", True), ("4444", False)]
    assert (await credits_of(api, admin))["total"] == "15.50"


async def test_declined_card_fails_and_credits_nothing(api: Api, admin: Actor) -> None:
    payload = await buy(api, admin, "20.00", spm="pm_card_chargeCustomerFail")
    assert [e["code"] for e in payload["errors"]] == ["PAYMENT_FAILED"]
    assert "declined" in payload["errors"][0]["message"]
    purchase = payload["purchase"]
    assert purchase["status"] == "FAILED"
    assert purchase["failureReason"] == payload["errors"][0]["message"]
    assert purchase["paymentIntentId"].startswith("pi_")
    assert payload["credits"]["total"] == "0.00"
    # The card that did not pay is not kept on file.
    assert await methods(api, admin) == []
    assert await CreditGrant.filter(team_id=uuid.UUID(admin.team_id)).count() == 0
    # A saved card that fails at charge time fails the same way.
    await add_card(api, admin, "pm_card_chargeCustomerFail")
    payload = await buy(api, admin, "20.00")
    assert payload["purchase"]["status"] == "FAILED"
    assert [e["code"] for e in payload["errors"]] == ["PAYMENT_FAILED"]
    assert (await credits_of(api, admin))["total"] == "0.00"


async def test_no_method_and_wrong_method(api: Api, admin: Actor) -> None:
    payload = await buy(api, admin, "10.00")
    assert (payload["errors"][0]["code"], payload["purchase"]) == ("PAYMENT_METHOD_REQUIRED", None)
    card = await add_card(api, admin)
    payload = await buy(api, admin, "10.00", m="BANK_TRANSFER")
    assert payload["errors"][0]["code"] == "PAYMENT_METHOD_REQUIRED"
    payload = await buy(api, admin, "10.00", m="BANK_TRANSFER", pm=card["id"])
    assert (payload["errors"][0]["code"], payload["errors"][0]["field"]) == (
        "INVALID_INPUT",
        "paymentMethodId",
    )
    payload = await buy(api, admin, "10.00", pm=card["id"], spm="pm_card_visa")
    assert payload["errors"][0]["code"] == "INVALID_INPUT"
    payload = await buy(api, admin, "10.00", pm=str(uuid.uuid4()))
    assert payload["errors"][0]["code"] == "NOT_FOUND"
    assert await purchases_of(api, admin) == []


async def test_amount_bounds(api: Api, admin: Actor) -> None:
    await add_card(api, admin)
    for amount in ["4.99", "100000.01", "10.001", "0", "-5", "abc"]:
        payload = await buy(api, admin, amount)
        error = payload["errors"][0]
        assert (error["code"], error["field"]) == ("INVALID_AMOUNT", "amount"), amount
    for amount in ["5", "100000.00"]:
        payload = await buy(api, admin, amount)
        assert payload["purchase"]["status"] == "SUCCEEDED", amount
    assert (await credits_of(api, admin))["total"] == "100005.00"


async def test_idempotency_key_returns_the_first_purchase(api: Api, admin: Actor) -> None:
    await add_card(api, admin)
    first = await buy(api, admin, "30.00", k="order-1")
    again = await buy(api, admin, "30.00", k="order-1")
    assert again["purchase"]["id"] == first["purchase"]["id"]
    assert again["purchase"]["status"] == "SUCCEEDED"
    other = await buy(api, admin, "31.00", k="order-1")
    assert other["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(await purchases_of(api, admin)) == 1
    assert (await credits_of(api, admin))["total"] == "30.00"
    # Retried at once, in parallel: still one purchase, one grant.
    results = await asyncio.gather(*(buy(api, admin, "7.00", k="order-2") for _ in range(5)))
    assert len({r["purchase"]["id"] for r in results}) == 1
    assert (await credits_of(api, admin))["total"] == "37.00"
    # The same key on another team is another purchase.
    other_team = await sign_up(api, "other@example.com")
    await add_card(api, other_team)
    assert (await buy(api, other_team, "30.00", k="order-1"))["errors"] == []
    bad = await buy(api, admin, "30.00", k="")
    assert bad["errors"][0]["field"] == "idempotencyKey"


async def test_history_is_newest_first_with_cursors(api: Api, admin: Actor) -> None:
    await add_card(api, admin)
    clock.freeze(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    ids = []
    for amount in ["5.00", "6.00", "7.00", "8.00", "9.00"]:
        ids.append((await buy(api, admin, amount))["purchase"]["id"])
        if amount != "7.00":  # two purchases share an instant: the id breaks the tie
            clock.advance(datetime.resolution * 1000)
    seen: list[str] = []
    after = None
    while True:
        data = await api.ok(
            PURCHASES, {"t": admin.team_id, "first": 2, "after": after}, admin.token
        )
        connection = data["team"]["purchases"]
        seen += [e["node"]["id"] for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5
    newest_first = await purchases_of(api, admin)
    assert [p["id"] for p in newest_first] == seen
    amounts = [p["amount"] for p in newest_first]
    assert amounts[0] == "9.00"
    assert set(amounts[1:3]) == {"7.00", "8.00"}
    assert amounts[3:] == ["6.00", "5.00"]
    data = await api.raw(
        PURCHASES, {"t": admin.team_id, "first": 2, "after": "garbage"}, admin.token
    )
    assert data["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    data = await api.raw(PURCHASES, {"t": admin.team_id, "first": 101}, admin.token)
    assert data["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_member_may_read_but_not_buy(api: Api, admin: Actor) -> None:
    await add_card(api, admin)
    await buy(api, admin, "5.00")
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    variables = {"t": admin.team_id, "a": "5.00"}
    assert await api.error_code(PURCHASE, variables, member.token) == "FORBIDDEN"
    assert [p["amount"] for p in await purchases_of(api, member)] == []  # own team: none
    data = await api.ok(PURCHASES, {"t": admin.team_id, "first": 5}, member.token)
    assert len(data["team"]["purchases"]["edges"]) == 1
    stranger = await sign_up(api, "stranger@example.com")
    assert await api.error_code(PURCHASE, variables, stranger.token) == "NOT_FOUND"
    assert await api.error_code(PURCHASES, {"t": admin.team_id}, stranger.token) == "NOT_FOUND"
    assert (await credits_of(api, admin))["total"] == "5.00"


# --- the contract other modules use -----------------------------------------------------------


async def test_charge_default_method_off_session(api: Api, admin: Actor) -> None:
    team = uuid.UUID(admin.team_id)
    with pytest.raises(DomainError) as raised:
        await charges.charge_default_method_off_session(
            team, 1234, idempotency_key="k1", description="March", metadata={"invoice": "1"}
        )
    assert raised.value.code is ErrorCode.PAYMENT_METHOD_REQUIRED
    await add_card(api, admin)
    charge = await charges.charge_default_method_off_session(
        team, 1234, idempotency_key="k2", description="March", metadata={"invoice": "1"}
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.payment_intent_id is not None
    assert charge.failure_message is None
    failing = await add_card(api, admin, "pm_card_chargeCustomerFail", make_default=True)
    assert failing["isDefault"]
    charge = await charges.charge_default_method_off_session(
        team, 1234, idempotency_key="k3", description="March", metadata={}
    )
    assert charge.status is ChargeStatus.FAILED
    assert charge.failure_message is not None
    assert "declined" in charge.failure_message


async def test_purchase_off_session(api: Api, admin: Actor) -> None:
    team = uuid.UUID(admin.team_id)
    with pytest.raises(DomainError) as raised:
        await purchases.purchase_off_session(
            team, 20 * UNITS_PER_DOLLAR, idempotency_key="top-1", reason="auto_top_up"
        )
    assert raised.value.code is ErrorCode.PAYMENT_METHOD_REQUIRED
    await add_card(api, admin)
    purchase = await purchases.purchase_off_session(
        team, 20 * UNITS_PER_DOLLAR, idempotency_key="top-1", reason="auto_top_up"
    )
    assert purchase.status is PurchaseStatus.SUCCEEDED
    assert purchase.off_session
    again = await purchases.purchase_off_session(
        team, 20 * UNITS_PER_DOLLAR, idempotency_key="top-1", reason="auto_top_up"
    )
    assert again.id == purchase.id
    grant = await CreditGrant.get(id=purchase.grant_id)
    assert (grant.amount, grant.description) == (20 * UNITS_PER_DOLLAR, "Auto top-up")
    await add_card(api, admin, "pm_card_chargeCustomerFail", make_default=True)
    failed = await purchases.purchase_off_session(
        team, 20 * UNITS_PER_DOLLAR, idempotency_key="top-2", reason="auto_top_up"
    )
    assert failed.status is PurchaseStatus.FAILED
    assert failed.failure_reason
    assert (await credits_of(api, admin))["total"] == "20.00"


# --- bank transfers (ACH): recorded responses ----------------------------------------------------


async def test_bank_transfer_stays_processing(api: Api, admin: Actor, ach: RecordedAch) -> None:
    clock.freeze(datetime(2026, 3, 6, 15, 0, tzinfo=UTC))  # a Friday
    bank = await add_card(api, admin, RECORDED_BANK_PAYMENT_METHOD["id"])
    assert (bank["type"], bank["brand"], bank["last4"]) == (
        "BANK_ACCOUNT",
        "STRIPE TEST BANK",
        "6789",
    )
    assert (bank["expMonth"], bank["expYear"]) == (None, None)
    # A card purchase does not use the bank account.
    payload = await buy(api, admin, "50.00")
    assert payload["errors"][0]["code"] == "PAYMENT_METHOD_REQUIRED"
    payload = await buy(api, admin, "50.00", m="BANK_TRANSFER")
    assert payload["errors"] == []
    purchase = payload["purchase"]
    assert purchase["status"] == "PROCESSING"
    assert purchase["method"] == "BANK_TRANSFER"
    assert purchase["expectedSettlementAt"] == "2026-03-11T15:00:00+00:00"  # 3 business days
    assert purchase["paymentMethod"]["id"] == bank["id"]
    assert payload["credits"]["total"] == "0.00"
    name, params, options = ach.calls[-1]
    assert name == "create_payment_intent"
    assert params["amount"] == 5000
    assert params["payment_method_types"] == ["us_bank_account"]
    assert params["confirm"] is True
    assert params["off_session"] is True  # debited on the mandate given when it was saved
    assert params["metadata"]["purchase_id"] == purchase["id"]
    assert options == {"idempotency_key": f"purchase:{purchase['id']}:confirm"}
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert stored.payment_intent_id == purchase["paymentIntentId"]


async def test_bank_transfer_needs_a_bank_account(api: Api, admin: Actor) -> None:
    await add_card(api, admin)
    payload = await buy(api, admin, "50.00", m="BANK_TRANSFER")
    assert (payload["errors"][0]["code"], payload["purchase"]) == ("PAYMENT_METHOD_REQUIRED", None)
    payload = await buy(api, admin, "50.00", m="BANK_TRANSFER", spm="pm_card_visa")
    assert payload["errors"][0]["code"] == "INVALID_INPUT"
