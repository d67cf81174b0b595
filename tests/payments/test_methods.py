"""Payment methods against localstripe: setup intents, add, default, remove, permissions."""

from __future__ import annotations

import uuid

import httpx

from app.payments import methods as payment_methods
from app.payments.emulator import StripeEmulator
from app.payments.models import PaymentMethod, StripeCustomer
from tests.support.api import Actor, Api, join, sign_up
from tests.support.payments import (
    ADD_PM,
    METHODS,
    REMOVE_PM,
    SET_DEFAULT,
    SETUP_INTENT,
    add_card,
    card_payment_method,
    emulator_client,
    methods,
)

LIMIT = """mutation($t: ID!, $l: Decimal!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: $l}) {
  credits { invoicedSpendingLimit } errors { code field message } } }"""


async def test_first_card_becomes_default_and_customer_is_created_once(
    api: Api, admin: Actor
) -> None:
    first = await add_card(api, admin)
    assert first["type"] == "CARD"
    assert first["brand"] == "visa"
    assert first["last4"] == "4242"
    assert first["isDefault"] is True
    assert isinstance(first["expMonth"], int)
    assert isinstance(first["expYear"], int)
    second = await add_card(api, admin)
    assert second["isDefault"] is False
    listed = await methods(api, admin)
    assert [m["id"] for m in listed] == [first["id"], second["id"]]
    team = uuid.UUID(admin.team_id)
    assert await StripeCustomer.filter(team_id=team).count() == 1
    default = await payment_methods.default_payment_method(team)
    assert default is not None
    assert str(default.id) == first["id"]


async def test_make_default_and_set_default(api: Api, admin: Actor) -> None:
    first = await add_card(api, admin)
    second = await add_card(api, admin, make_default=True)
    assert second["isDefault"] is True
    listed = await methods(api, admin)
    assert [(m["id"], m["isDefault"]) for m in listed] == [
        (second["id"], True),
        (first["id"], False),
    ]
    data = await api.ok(SET_DEFAULT, {"t": admin.team_id, "id": first["id"]}, admin.token)
    assert data["setDefaultPaymentMethod"]["paymentMethod"]["isDefault"] is True
    listed = await methods(api, admin)
    assert [m["id"] for m in listed if m["isDefault"]] == [first["id"]]


async def test_remove_refuses_the_last_and_promotes_the_newest(api: Api, admin: Actor) -> None:
    only = await add_card(api, admin)
    data = await api.ok(REMOVE_PM, {"t": admin.team_id, "id": only["id"]}, admin.token)
    assert data["removePaymentMethod"]["errors"][0]["code"] == "LAST_PAYMENT_METHOD"
    assert len(await methods(api, admin)) == 1

    middle = await add_card(api, admin)
    newest = await add_card(api, admin)
    data = await api.ok(REMOVE_PM, {"t": admin.team_id, "id": only["id"]}, admin.token)
    assert data["removePaymentMethod"] == {"removedPaymentMethodId": only["id"], "errors": []}
    listed = await methods(api, admin)
    assert [(m["id"], m["isDefault"]) for m in listed] == [
        (newest["id"], True),
        (middle["id"], False),
    ]
    # Removing a non-default method leaves the default alone.
    await api.ok(REMOVE_PM, {"t": admin.team_id, "id": middle["id"]}, admin.token)
    assert [m["id"] for m in await methods(api, admin)] == [newest["id"]]
    removed = await PaymentMethod.get(id=uuid.UUID(only["id"]))
    assert removed.removed_at is not None
    # Removed once, it is gone: NOT_FOUND on the field.
    data = await api.ok(REMOVE_PM, {"t": admin.team_id, "id": only["id"]}, admin.token)
    assert data["removePaymentMethod"]["errors"][0]["code"] == "NOT_FOUND"


async def test_bad_payment_method_ids(api: Api, admin: Actor) -> None:
    for pm in ["", "card_123", "pm_does_not_exist", "pm_" + "x" * 300]:
        data = await api.ok(ADD_PM, {"t": admin.team_id, "pm": pm}, admin.token)
        error = data["addPaymentMethod"]["errors"][0]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", "stripePaymentMethodId"), pm
    for bad in ["nope", str(uuid.uuid4())]:
        data = await api.ok(SET_DEFAULT, {"t": admin.team_id, "id": bad}, admin.token)
        assert data["setDefaultPaymentMethod"]["errors"][0]["code"] == "NOT_FOUND"
    assert await methods(api, admin) == []


async def test_card_declined_at_attach(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator
) -> None:
    pm = await card_payment_method(stripe_emulator.url, "4000000000000002")
    data = await api.ok(ADD_PM, {"t": admin.team_id, "pm": pm}, admin.token)
    error = data["addPaymentMethod"]["errors"][0]
    assert error["code"] == "PAYMENT_FAILED"
    assert "declined" in error["message"]
    assert await methods(api, admin) == []


async def test_another_teams_method_is_refused(api: Api, admin: Actor) -> None:
    other = await sign_up(api, "other-admin@example.com")
    theirs = await add_card(api, other)
    stripe_id = (await PaymentMethod.get(id=uuid.UUID(theirs["id"]))).stripe_id
    data = await api.ok(ADD_PM, {"t": admin.team_id, "pm": stripe_id}, admin.token)
    assert data["addPaymentMethod"]["errors"][0]["code"] == "INVALID_INPUT"
    # Their method id is not ours to make default or remove either.
    data = await api.ok(SET_DEFAULT, {"t": admin.team_id, "id": theirs["id"]}, admin.token)
    assert data["setDefaultPaymentMethod"]["errors"][0]["code"] == "NOT_FOUND"
    data = await api.ok(REMOVE_PM, {"t": admin.team_id, "id": theirs["id"]}, admin.token)
    assert data["removePaymentMethod"]["errors"][0]["code"] == "NOT_FOUND"


async def test_setup_intent_then_add_the_confirmed_method(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator
) -> None:
    data = await api.ok(SETUP_INTENT, {"t": admin.team_id, "type": "CARD"}, admin.token)
    payload = data["createSetupIntent"]
    assert payload["errors"] == []
    assert payload["clientSecret"].startswith(payload["setupIntentId"])
    # What Stripe.js confirmCardSetup sends with the publishable key.
    async with httpx.AsyncClient(base_url=stripe_emulator.url) as http:
        response = await http.post(
            f"/v1/setup_intents/{payload['setupIntentId']}/confirm",
            json={
                "key": "pk_test_creditline",
                "client_secret": payload["clientSecret"],
                "payment_method_data": {
                    "type": "card",
                    "card": {
                        "number": "4242424242424242",
                        "exp_month": 11,
                        "exp_year": 2031,
                        "cvc": "123",
                    },
                },
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    method = await add_card(api, admin, response.json()["payment_method"])
    assert (method["last4"], method["expMonth"], method["expYear"]) == ("4242", 11, 2031)
    assert method["isDefault"] is True
    # The emulator now lists it on the team's customer, and it is Stripe's default too.
    customer = (await StripeCustomer.get(team_id=uuid.UUID(admin.team_id))).stripe_id
    async with emulator_client(stripe_emulator.url) as http:
        body = (await http.get(f"/v1/customers/{customer}")).json()
    assert body["invoice_settings"]["default_payment_method"] == response.json()["payment_method"]


async def test_bank_account_setup_intent_is_created(api: Api, admin: Actor) -> None:
    # The emulator knows us_bank_account (app/payments/emulator_patches.py); confirming it
    # is in tests/payments/test_emulator.py.
    data = await api.ok(SETUP_INTENT, {"t": admin.team_id, "type": "BANK_ACCOUNT"}, admin.token)
    setup = data["createSetupIntent"]
    assert setup["errors"] == []
    assert setup["clientSecret"].startswith(setup["setupIntentId"] + "_secret_")


async def test_invoiced_limit_needs_a_payment_method(api: Api, admin: Actor) -> None:
    data = await api.ok(LIMIT, {"t": admin.team_id, "l": "100.00"}, admin.token)
    error = data["setInvoicedSpendingLimit"]["errors"][0]
    assert (error["code"], error["field"]) == ("PAYMENT_METHOD_REQUIRED", "limit")
    # Zero needs nothing; an out-of-range limit is still INVALID_AMOUNT first.
    data = await api.ok(LIMIT, {"t": admin.team_id, "l": "0"}, admin.token)
    assert data["setInvoicedSpendingLimit"]["errors"] == []
    data = await api.ok(LIMIT, {"t": admin.team_id, "l": "1000000.01"}, admin.token)
    assert data["setInvoicedSpendingLimit"]["errors"][0]["code"] == "INVALID_AMOUNT"
    await add_card(api, admin)
    data = await api.ok(LIMIT, {"t": admin.team_id, "l": "100.00"}, admin.token)
    assert data["setInvoicedSpendingLimit"] == {
        "credits": {"invoicedSpendingLimit": "100.00"},
        "errors": [],
    }


async def test_member_reads_but_may_not_change(api: Api, admin: Actor) -> None:
    card = await add_card(api, admin)
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    data = await api.ok(METHODS, {"t": admin.team_id}, member.token)
    assert [m["last4"] for m in data["team"]["paymentMethods"]] == ["4242"]
    attempts = [
        (SETUP_INTENT, {"t": admin.team_id, "type": "CARD"}),
        (ADD_PM, {"t": admin.team_id, "pm": "pm_card_visa"}),
        (SET_DEFAULT, {"t": admin.team_id, "id": card["id"]}),
        (REMOVE_PM, {"t": admin.team_id, "id": card["id"]}),
    ]
    for query, variables in attempts:
        assert await api.error_code(query, variables, member.token) == "FORBIDDEN"
    # Someone outside the team cannot tell it exists.
    stranger = await sign_up(api, "stranger@example.com")
    assert await api.error_code(METHODS, {"t": admin.team_id}, stranger.token) == "NOT_FOUND"
    for query, variables in attempts:
        assert await api.error_code(query, variables, stranger.token) == "NOT_FOUND"
    assert len(await methods(api, admin)) == 1
