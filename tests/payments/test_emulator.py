"""End to end with localstripe's own webhooks: the app serves on a real loopback port and the
emulator delivers signed events to /webhooks/stripe (about a second after each change)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from app.config import Settings
from app.credits.models import CreditGrant
from app.main import create_app
from app.payments.emulator import StripeEmulator
from app.payments.models import Purchase, StripeEvent
from tests.support.api import Actor, Api
from tests.support.payments import (
    SETUP_INTENT,
    STRIPE_WEBHOOK_SECRET,
    add_card,
    authenticate_3ds,
    buy,
    card_payment_method,
    confirm_bank_setup,
    credits_of,
    emulator_client,
    methods,
    purchases_of,
    wait_for,
)

EVENTS = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "setup_intent.succeeded",
]


@pytest.fixture(scope="module")
async def live_server(database: Settings, stripe_emulator: StripeEmulator) -> AsyncIterator[str]:
    """The app on 127.0.0.1 (a free port), registered as the emulator's webhook endpoint."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app = create_app(database, manage_db=False)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    stripe_emulator.register_webhook(
        "creditline-tests", f"{url}/webhooks/stripe", STRIPE_WEBHOOK_SECRET, EVENTS
    )
    yield url
    server.should_exit = True
    await task
    sock.close()


async def _event_for(intent_id: str, type: str) -> StripeEvent | None:
    for event in await StripeEvent.filter(type=type):
        payload: dict[str, Any] = event.payload
        if payload["data"]["object"].get("id") == intent_id:
            return event
    return None


async def test_3ds_card_is_credited_by_the_webhook(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator, live_server: str
) -> None:
    pm = await card_payment_method(stripe_emulator.url, "4000002500003155")
    payload = await buy(api, admin, "30.00", spm=pm)
    assert payload["errors"] == []
    purchase = payload["purchase"]
    assert purchase["status"] == "REQUIRES_ACTION"
    assert purchase["clientSecret"].startswith(purchase["paymentIntentId"])
    assert payload["credits"]["total"] == "0.00"
    assert await methods(api, admin) == []  # kept on file only once it has paid

    await authenticate_3ds(
        stripe_emulator.url, purchase["paymentIntentId"], purchase["clientSecret"], success=True
    )

    async def settled() -> bool:
        return (await purchases_of(api, admin))[0]["status"] == "SUCCEEDED"

    await wait_for(settled, what="payment_intent.succeeded from the emulator")
    done = (await purchases_of(api, admin))[0]
    assert done["clientSecret"] is None
    assert done["settledAt"] is not None
    assert (await credits_of(api, admin))["prepaid"] == "30.00"
    saved = await methods(api, admin)
    assert [(m["last4"], m["isDefault"]) for m in saved] == [("3155", True)]
    assert done["paymentMethod"]["id"] == saved[0]["id"]
    event = await _event_for(purchase["paymentIntentId"], "payment_intent.succeeded")
    assert event is not None
    assert event.outcome == "purchase REQUIRES_ACTION -> SUCCEEDED"


async def test_confirm_and_emulator_webhook_credit_once(
    api: Api, admin: Actor, live_server: str
) -> None:
    payload = await buy(api, admin, "12.00", spm="pm_card_visa")
    purchase = payload["purchase"]
    assert purchase["status"] == "SUCCEEDED"
    intent = purchase["paymentIntentId"]

    async def delivered() -> bool:
        return await _event_for(intent, "payment_intent.succeeded") is not None

    await wait_for(delivered, what="payment_intent.succeeded from the emulator")
    event = await _event_for(intent, "payment_intent.succeeded")
    assert event is not None
    assert event.outcome == "purchase SUCCEEDED -> SUCCEEDED"
    team = uuid.UUID(admin.team_id)
    assert await CreditGrant.filter(team_id=team).count() == 1
    assert (await credits_of(api, admin))["total"] == "12.00"


async def test_decline_and_its_webhook_credit_nothing(
    api: Api, admin: Actor, live_server: str
) -> None:
    payload = await buy(api, admin, "12.00", spm="pm_card_chargeCustomerFail")
    purchase = payload["purchase"]
    assert purchase["status"] == "FAILED"
    intent = purchase["paymentIntentId"]

    async def delivered() -> bool:
        return await _event_for(intent, "payment_intent.payment_failed") is not None

    await wait_for(delivered, what="payment_intent.payment_failed from the emulator")
    event = await _event_for(intent, "payment_intent.payment_failed")
    assert event is not None
    assert event.outcome == "purchase FAILED -> FAILED"
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert stored.failure_reason == "Your card was declined."
    assert (await credits_of(api, admin))["total"] == "0.00"


# --- bank accounts (the emulator's us_bank_account support) -------------------------------------


async def _bank_account(
    api: Api, admin: Actor, base_url: str, account_number: str
) -> dict[str, Any]:
    """A bank account added the console's way: a SetupIntent for us_bank_account, confirmed
    as Stripe.js confirmUsBankAccountSetup does (instant verification), then put on file."""
    data = await api.ok(SETUP_INTENT, {"t": admin.team_id, "type": "BANK_ACCOUNT"}, admin.token)
    setup = data["createSetupIntent"]
    assert setup["errors"] == []
    confirmed = await confirm_bank_setup(base_url, setup["clientSecret"], account_number)
    assert confirmed["status"] == "succeeded"
    return await add_card(api, admin, confirmed["payment_method"])


async def test_bank_transfer_processes_then_credits_on_settlement(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator, live_server: str
) -> None:
    bank = await _bank_account(api, admin, stripe_emulator.url, "000123456789")
    assert (bank["type"], bank["brand"], bank["last4"]) == (
        "BANK_ACCOUNT",
        "STRIPE TEST BANK",
        "6789",
    )

    payload = await buy(api, admin, "40.00", m="BANK_TRANSFER", pm=bank["id"])
    assert payload["errors"] == []
    purchase = payload["purchase"]
    assert purchase["status"] == "PROCESSING"
    assert (await credits_of(api, admin))["total"] == "0.00"

    async def settled() -> bool:
        return (await purchases_of(api, admin))[0]["status"] == "SUCCEEDED"

    await wait_for(settled, what="payment_intent.succeeded after the debit settled")
    assert (await credits_of(api, admin))["prepaid"] == "40.00"
    event = await _event_for(purchase["paymentIntentId"], "payment_intent.succeeded")
    assert event is not None
    assert event.outcome == "purchase PROCESSING -> SUCCEEDED"


async def test_failed_bank_transfer_is_never_credited(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator, live_server: str
) -> None:
    bank = await _bank_account(api, admin, stripe_emulator.url, "000111111113")
    payload = await buy(api, admin, "40.00", m="BANK_TRANSFER", pm=bank["id"])
    purchase = payload["purchase"]
    assert purchase["status"] == "PROCESSING"

    async def failed() -> bool:
        return (await purchases_of(api, admin))[0]["status"] == "FAILED"

    await wait_for(failed, what="payment_intent.payment_failed after the debit was returned")
    done = (await purchases_of(api, admin))[0]
    assert done["failureReason"] == "The customer's bank account has been closed."
    await asyncio.sleep(1.5)  # a late or repeated event changes nothing
    assert (await credits_of(api, admin))["total"] == "0.00"
    assert await CreditGrant.filter(team_id=uuid.UUID(admin.team_id)).count() == 0


@pytest.mark.parametrize(
    ("routing", "account", "name", "param"),
    [
        ("110000001", "000123456789", "Ada", "us_bank_account[routing_number]"),
        ("11000000", "000123456789", "Ada", "us_bank_account[routing_number]"),
        ("110000000", "12a4", "Ada", "us_bank_account[account_number]"),
        ("110000000", "000123456789", "", "billing_details[name]"),
    ],
)
async def test_emulator_refuses_bad_bank_details(
    stripe_emulator: StripeEmulator, routing: str, account: str, name: str, param: str
) -> None:
    async with emulator_client(stripe_emulator.url) as http:
        response = await http.post(
            "/v1/payment_methods",
            data={
                "type": "us_bank_account",
                "us_bank_account[routing_number]": routing,
                "us_bank_account[account_number]": account,
                "billing_details[name]": name,
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
