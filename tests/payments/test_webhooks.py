"""POST /webhooks/stripe with signed events: verification, the inbox, ordering, concurrency,
refunds and disputes, saved and detached methods."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from typing import Any

import httpx
import pytest
import stripe

from app.config import Settings
from app.credits import service as credits
from app.credits.models import CreditGrant, LedgerEntry, LedgerKind
from app.kit.money import UNITS_PER_DOLLAR
from app.payments import gateway as payment_gateway
from app.payments.emulator import StripeEmulator
from app.payments.models import PaymentMethod, Purchase, PurchaseStatus, StripeCustomer, StripeEvent
from app.payments.stripe import StripeGateway
from tests.support.api import Actor, Api
from tests.support.billing import RECORD_USAGE
from tests.support.payments import (
    ADD_PM,
    STRIPE_API_KEY,
    RecordedAch,
    add_card,
    bank_purchase,
    buy,
    charge_event,
    credits_of,
    deliver,
    emulator_client,
    event_for,
    intent_event,
    methods,
    signed,
)


async def state(purchase_id: str) -> tuple[PurchaseStatus, int]:
    """The purchase's status and how many grants its team has."""
    stored = await Purchase.get(id=uuid.UUID(purchase_id))
    grants = await CreditGrant.filter(team_id=stored.team_id).count()
    return stored.status, grants


# --- verification -------------------------------------------------------------------------------


async def test_signature_is_required(client: httpx.AsyncClient, settings: Settings) -> None:
    event = {"id": "evt_sig", "type": "ping", "data": {"object": {}}}
    body, headers = signed(event, secret="whsec_wrong")
    assert (await client.post("/webhooks/stripe", content=body, headers=headers)).status_code == 400
    body, headers = signed(event, timestamp=int(time.time()) - 600)  # outside the 5 min tolerance
    assert (await client.post("/webhooks/stripe", content=body, headers=headers)).status_code == 400
    response = await client.post("/webhooks/stripe", content=body)  # no header
    assert response.status_code == 400
    body, headers = signed(event)
    tampered = body.replace(b"evt_sig", b"evt_sig2")
    response = await client.post("/webhooks/stripe", content=tampered, headers=headers)
    assert response.status_code == 400
    assert await StripeEvent.all().count() == 0
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "ignored"}


async def test_malformed_bodies_are_refused(client: httpx.AsyncClient) -> None:
    bad = [
        "not json",
        "[1, 2]",
        "{}",
        json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}),
        json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": 7}}),
        json.dumps({"id": 5, "type": "x", "data": {"object": {}}}),
    ]
    for payload in bad:
        body, headers = signed(payload)
        response = await client.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 400, payload
    huge = json.dumps({"id": "evt_big", "type": "x", "data": {"object": {"x": "a" * 2_000_000}}})
    body, headers = signed(huge)
    assert (await client.post("/webhooks/stripe", content=body, headers=headers)).status_code == 413
    assert await StripeEvent.all().count() == 0


async def test_unknown_events_are_acknowledged_once(client: httpx.AsyncClient) -> None:
    event = {"id": "evt_unknown", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    first = await deliver(client, event)
    second = await deliver(client, event)
    assert (first.status_code, first.json()["outcome"]) == (200, "ignored")
    assert (second.status_code, second.json()["outcome"]) == (200, "duplicate")
    stored = await StripeEvent.get(id="evt_unknown")
    assert stored.type == "customer.created"
    assert stored.payload == event


# --- bank transfers: ordering, duplicates, concurrency ------------------------------------------


async def test_bank_transfer_credits_only_on_success(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    purchase = await bank_purchase(api, admin)
    processing = await deliver(client, event_for("payment_intent.processing", purchase, admin))
    assert processing.json()["outcome"] == "purchase PROCESSING -> PROCESSING"
    assert (await credits_of(api, admin))["total"] == "0.00"
    succeeded = event_for("payment_intent.succeeded", purchase, admin)
    outcomes = [(await deliver(client, succeeded)).json()["outcome"] for _ in range(3)]
    assert outcomes == ["purchase PROCESSING -> SUCCEEDED", "duplicate", "duplicate"]
    assert await state(purchase["id"]) == (PurchaseStatus.SUCCEEDED, 1)
    assert (await credits_of(api, admin))["prepaid"] == "50.00"
    # A second event saying the same thing (another id) changes nothing either.
    again = await deliver(client, event_for("payment_intent.succeeded", purchase, admin))
    assert again.json()["outcome"] == "purchase SUCCEEDED -> SUCCEEDED"
    assert (await credits_of(api, admin))["prepaid"] == "50.00"
    assert await StripeEvent.all().count() == 3


async def test_bank_transfer_failure_is_recorded(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    purchase = await bank_purchase(api, admin)
    reason = "The customer's bank account could not be located."
    failed = event_for("payment_intent.payment_failed", purchase, admin, error=reason)
    assert (await deliver(client, failed)).status_code == 200
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert (stored.status, stored.failure_reason) == (PurchaseStatus.FAILED, reason)
    assert (await credits_of(api, admin))["total"] == "0.00"
    canceled = await bank_purchase(api, admin)
    await deliver(client, event_for("payment_intent.canceled", canceled, admin))
    assert await state(canceled["id"]) == (PurchaseStatus.CANCELED, 0)


ORDERS = {
    # the events of one PaymentIntent -> where in-order delivery ends
    ("processing", "succeeded"): PurchaseStatus.SUCCEEDED,
    ("processing", "payment_failed"): PurchaseStatus.FAILED,
    ("processing", "canceled"): PurchaseStatus.CANCELED,
    # a failed attempt, then paid on a retry: the money arrived
    ("processing", "payment_failed", "succeeded"): PurchaseStatus.SUCCEEDED,
}


async def test_every_delivery_order_ends_like_in_order(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    cases = credited = 0
    for in_order, expected in ORDERS.items():
        for order in itertools.permutations(in_order):
            purchase = await bank_purchase(api, admin, "10.00")
            events = {
                name: event_for(f"payment_intent.{name}", purchase, admin, error="Declined.")
                for name in in_order
            }
            for name in order:
                assert (await deliver(client, events[name])).status_code == 200
            # Duplicates of all of them, in reverse, change nothing.
            for name in reversed(order):
                assert (await deliver(client, events[name])).json()["outcome"] == "duplicate"
            credited += 1 if expected is PurchaseStatus.SUCCEEDED else 0
            assert await state(purchase["id"]) == (expected, credited), order
            cases += 1
    assert (cases, credited) == (2 + 2 + 2 + 6, 2 + 6)
    assert (await credits_of(api, admin))["prepaid"] == "80.00"


async def test_twenty_concurrent_deliveries_credit_once(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    purchase = await bank_purchase(api, admin)
    body, headers = signed(event_for("payment_intent.succeeded", purchase, admin))
    responses = await asyncio.gather(
        *(client.post("/webhooks/stripe", content=body, headers=headers) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["duplicate"] * 19 + ["purchase PROCESSING -> SUCCEEDED"]
    assert await state(purchase["id"]) == (PurchaseStatus.SUCCEEDED, 1)
    assert (await credits_of(api, admin))["prepaid"] == "50.00"
    team = uuid.UUID(admin.team_id)
    assert await LedgerEntry.filter(team_id=team, kind=LedgerKind.GRANT).count() == 1


async def test_distinct_success_events_racing_credit_once(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    """Different event ids for one success (Stripe's retries are the same id; a replayed
    intent is not): the purchase's status, not the inbox, decides."""
    purchase = await bank_purchase(api, admin)
    events = [event_for("payment_intent.succeeded", purchase, admin) for _ in range(10)]
    responses = await asyncio.gather(*(deliver(client, e) for e in events))
    assert [r.status_code for r in responses] == [200] * 10
    assert await state(purchase["id"]) == (PurchaseStatus.SUCCEEDED, 1)
    assert (await credits_of(api, admin))["prepaid"] == "50.00"


async def test_card_success_by_confirm_and_webhook_credits_once(
    api: Api, client: httpx.AsyncClient, admin: Actor
) -> None:
    await add_card(api, admin)
    purchase = (await buy(api, admin, "40.00"))["purchase"]
    assert purchase["status"] == "SUCCEEDED"
    event = event_for("payment_intent.succeeded", purchase, admin, methods=("card",))
    assert (await deliver(client, event)).json()["outcome"] == "purchase SUCCEEDED -> SUCCEEDED"
    assert await state(purchase["id"]) == (PurchaseStatus.SUCCEEDED, 1)
    assert (await credits_of(api, admin))["total"] == "40.00"


async def test_events_that_are_not_ours(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    stranger = intent_event(
        "payment_intent.succeeded",
        purchase_id=str(uuid.uuid4()),
        team_id=admin.team_id,
        intent_id="pi_not_ours",
        amount_cents=5000,
    )
    assert (await deliver(client, stranger)).json()["outcome"] == "not a purchase"
    purchase = await bank_purchase(api, admin)
    wrong_amount = event_for("payment_intent.succeeded", purchase, admin)
    wrong_amount["data"]["object"]["amount_received"] = 1
    assert (await deliver(client, wrong_amount)).json()["outcome"] == "amount mismatch"
    other_intent = event_for("payment_intent.succeeded", purchase, admin)
    other_intent["data"]["object"]["id"] = "pi_other"
    assert (await deliver(client, other_intent)).json()["outcome"] == "another payment intent"
    assert await state(purchase["id"]) == (PurchaseStatus.PROCESSING, 0)


# --- refunds and disputes -----------------------------------------------------------------------


async def _paid(api: Api, client: httpx.AsyncClient, admin: Actor) -> dict[str, Any]:
    purchase = await bank_purchase(api, admin, "100.00")
    await deliver(client, event_for("payment_intent.succeeded", purchase, admin))
    return purchase


async def test_refund_withdraws_unspent_credits_never_below_zero(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor, ach: RecordedAch
) -> None:
    purchase = await _paid(api, client, admin)
    intent = purchase["paymentIntentId"]
    spent = await api.ok(
        RECORD_USAGE, {"t": admin.team_id, "a": "70.00", "k": "u1"}, operator.token
    )
    assert spent["recordUsage"]["errors"] == []
    partial = charge_event(
        "charge.refunded", intent_id=intent, amount_cents=10000, refunded_cents=2000
    )
    assert (await deliver(client, partial)).status_code == 200
    assert (await credits_of(api, admin))["prepaid"] == "10.00"
    assert (await deliver(client, partial)).json()["outcome"] == "duplicate"
    full = charge_event(
        "charge.refunded", intent_id=intent, amount_cents=10000, refunded_cents=10000
    )
    await deliver(client, full)
    assert (await credits_of(api, admin))["prepaid"] == "0.00"
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert (stored.refunded_amount, stored.withdrawn_amount) == (
        100 * UNITS_PER_DOLLAR,
        30 * UNITS_PER_DOLLAR,
    )
    assert stored.status is PurchaseStatus.SUCCEEDED
    # An older partial refund arriving late changes nothing.
    await deliver(client, partial)
    assert (await Purchase.get(id=stored.id)).refunded_amount == 100 * UNITS_PER_DOLLAR
    team = uuid.UUID(admin.team_id)
    withdrawals = await LedgerEntry.filter(team_id=team, kind=LedgerKind.WITHDRAWAL)
    assert sorted(e.amount for e in withdrawals) == [-20 * UNITS_PER_DOLLAR, -10 * UNITS_PER_DOLLAR]
    view = await credits.credits_view(team)
    assert view.prepaid == 0
    data = await api.ok(
        """query($t: ID!) { team(id: $t) { purchases { edges { node {
          refundedAmount withdrawnAmount status } } } } }""",
        {"t": admin.team_id},
        admin.token,
    )
    node = data["team"]["purchases"]["edges"][0]["node"]
    assert node == {"refundedAmount": "100.00", "withdrawnAmount": "30.00", "status": "SUCCEEDED"}


async def test_dispute_withdraws_unspent_credits(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    purchase = await _paid(api, client, admin)
    dispute = charge_event(
        "charge.dispute.created", intent_id=purchase["paymentIntentId"], amount_cents=10000
    )
    assert (await deliver(client, dispute)).json()[
        "outcome"
    ] == f"withdrew {100 * UNITS_PER_DOLLAR} units"
    assert (await credits_of(api, admin))["total"] == "0.00"
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert stored.disputed_at is not None
    assert stored.disputed_amount == 100 * UNITS_PER_DOLLAR


async def test_refund_before_success_is_applied_at_settlement(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    purchase = await bank_purchase(api, admin, "100.00")
    refund = charge_event(
        "charge.refunded",
        intent_id=purchase["paymentIntentId"],
        amount_cents=10000,
        refunded_cents=4000,
    )
    await deliver(client, refund)
    assert (await credits_of(api, admin))["total"] == "0.00"
    await deliver(client, event_for("payment_intent.succeeded", purchase, admin))
    assert (await credits_of(api, admin))["prepaid"] == "60.00"
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert stored.withdrawn_amount == 40 * UNITS_PER_DOLLAR


# --- payment methods ----------------------------------------------------------------------------


async def test_setup_intent_succeeded_saves_the_method(
    api: Api, client: httpx.AsyncClient, admin: Actor, stripe_emulator: StripeEmulator
) -> None:
    data = await api.ok(
        """mutation($t: ID!) { createSetupIntent(input: {teamId: $t}) {
          setupIntentId errors { code } } }""",
        {"t": admin.team_id},
        admin.token,
    )
    intent_id = data["createSetupIntent"]["setupIntentId"]
    async with emulator_client(stripe_emulator.url) as http:
        response = await http.post(
            f"/v1/setup_intents/{intent_id}/confirm", data={"payment_method": "pm_card_visa"}
        )
    intent = response.json()
    assert intent["status"] == "succeeded"
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "setup_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent},
    }
    assert (await deliver(client, event)).json()["outcome"] == "payment method saved"
    saved = await methods(api, admin)
    assert [(m["last4"], m["isDefault"]) for m in saved] == [("4242", True)]
    assert (await deliver(client, event)).json()["outcome"] == "duplicate"
    # The console adding the same method afterwards keeps one row.
    await add_card(api, admin, intent["payment_method"])
    assert len(await methods(api, admin)) == 1
    # A customer that is not ours is ignored.
    foreign = {**event, "id": "evt_foreign", "data": {"object": {**intent, "customer": "cus_x"}}}
    assert (await deliver(client, foreign)).json()["outcome"] == "not our customer"


async def test_detached_at_stripe_leaves_the_file(
    api: Api, client: httpx.AsyncClient, admin: Actor
) -> None:
    first = await add_card(api, admin)
    second = await add_card(api, admin)
    stripe_id = (await PaymentMethod.get(id=uuid.UUID(first["id"]))).stripe_id
    customer = (await StripeCustomer.get(team_id=uuid.UUID(admin.team_id))).stripe_id
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_method.detached",
        "created": int(time.time()),
        "data": {
            "object": {"id": stripe_id, "object": "payment_method", "customer": None},
            "previous_attributes": {"customer": customer},
        },
    }
    assert (await deliver(client, event)).json()["outcome"] == "payment method removed"
    assert [(m["id"], m["isDefault"]) for m in await methods(api, admin)] == [(second["id"], True)]
    # Even the last one: it is gone at Stripe.
    last = (await PaymentMethod.get(id=uuid.UUID(second["id"]))).stripe_id
    event2 = {**event, "id": "evt_detach_last", "data": {"object": {"id": last}}}
    assert (await deliver(client, event2)).json()["outcome"] == "payment method removed"
    assert await methods(api, admin) == []


# --- Stripe unreachable ---------------------------------------------------------------------------


async def test_unreachable_stripe_is_a_user_error(api: Api, admin: Actor) -> None:
    closed = StripeGateway(STRIPE_API_KEY, "http://127.0.0.1:9", 0)  # nothing listens on 9
    previous = payment_gateway.set_gateway(closed)
    try:
        data = await api.ok(ADD_PM, {"t": admin.team_id, "pm": "pm_card_visa"}, admin.token)
        assert data["addPaymentMethod"]["errors"][0]["code"] == "PAYMENT_PROVIDER_UNAVAILABLE"
        payload = await buy(api, admin, "10.00", spm="pm_card_visa")
        assert payload["errors"][0]["code"] == "PAYMENT_PROVIDER_UNAVAILABLE"
    finally:
        payment_gateway.set_gateway(previous)
        await closed.aclose()
    assert await Purchase.all().count() == 0


async def test_confirm_lost_in_transit_is_settled_by_the_webhook(
    api: Api,
    client: httpx.AsyncClient,
    admin: Actor,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_card(api, admin)
    gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base, 0)

    async def lost(*_args: Any, **_kwargs: Any) -> None:
        raise stripe.APIConnectionError("connection reset")

    monkeypatch.setattr(gateway._client.v1.payment_intents, "create_async", lost)
    previous = payment_gateway.set_gateway(gateway)
    try:
        payload = await buy(api, admin, "15.00")
    finally:
        payment_gateway.set_gateway(previous)
        await gateway.aclose()
    purchase = payload["purchase"]
    assert purchase["status"] == "FAILED"
    assert purchase["paymentIntentId"] is None
    assert [e["code"] for e in payload["errors"]] == ["PAYMENT_FAILED"]
    assert "could not be reached" in purchase["failureReason"]
    # Stripe did take it: its webhook names our purchase in the metadata.
    event = intent_event(
        "payment_intent.succeeded",
        purchase_id=purchase["id"],
        team_id=admin.team_id,
        intent_id="pi_lost_in_transit",
        amount_cents=1500,
        methods=("card",),
    )
    assert (await deliver(client, event)).json()["outcome"] == "purchase FAILED -> SUCCEEDED"
    stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
    assert (stored.status, stored.payment_intent_id) == (
        PurchaseStatus.SUCCEEDED,
        "pi_lost_in_transit",
    )
    assert (await credits_of(api, admin))["total"] == "15.00"
