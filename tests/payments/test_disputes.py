"""Chargebacks after spending (docs/trust.md, class 7), with signed webhooks through
POST /webhooks/stripe: the shortfall a dispute could not withdraw, the suspension of
invoiced billing while it is owed, its payment by a later purchase, and a won dispute."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx

from app.billing.ledger_audit import audit
from app.credits.models import AlertKind, BillingAlert, CreditAccount, CreditGrant
from app.invoices import collection
from app.invoices.models import Invoice, InvoiceKind, InvoiceStatus
from app.kit import clock
from app.kit.money import UNITS_PER_DOLLAR
from app.payments.models import Purchase
from tests.support.api import Actor, Api
from tests.support.billing import LIMIT, RECORD_USAGE
from tests.support.payments import (
    RecordedAch,
    bank_purchase,
    charge_event,
    credits_of,
    deliver,
    event_for,
)

PURCHASE_DISPUTE = """query($t: ID!) { team(id: $t) { purchases { edges { node {
  id disputedAmount withdrawnAmount shortfallAmount shortfallOwed disputeWonAt } } } } }"""
CREDITS_STATE = """query($t: ID!) { team(id: $t) { credits {
  total prepaid invoicedSpendingLimit invoicedRemaining invoicingSuspended } } }"""


def dollars(amount: int) -> int:
    return amount * UNITS_PER_DOLLAR


def dispute_event(
    type: str, purchase: dict[str, Any], cents: int, status: str = "needs_response"
) -> dict[str, Any]:
    """charge.dispute.created or charge.dispute.closed for the purchase's PaymentIntent."""
    event = charge_event(
        "charge.dispute.created", intent_id=purchase["paymentIntentId"], amount_cents=cents
    )
    event["type"] = type
    event["data"]["object"]["status"] = status
    return event


async def paid(api: Api, client: httpx.AsyncClient, admin: Actor, amount: str) -> dict[str, Any]:
    purchase = await bank_purchase(api, admin, amount)
    outcome = (await deliver(client, event_for("payment_intent.succeeded", purchase, admin))).json()
    assert outcome["outcome"] == "purchase PROCESSING -> SUCCEEDED", outcome
    return purchase


async def credits_state(api: Api, admin: Actor) -> dict[str, Any]:
    data = await api.ok(CREDITS_STATE, {"t": admin.team_id}, admin.token)
    found: dict[str, Any] = data["team"]["credits"]
    return found


async def spend(api: Api, operator: Actor, admin: Actor, amount: str, key: str) -> list[str]:
    data = await api.ok(RECORD_USAGE, {"t": admin.team_id, "a": amount, "k": key}, operator.token)
    return [e["code"] for e in data["recordUsage"]["errors"]]


async def purchase_nodes(api: Api, admin: Actor) -> dict[str, dict[str, Any]]:
    data = await api.ok(PURCHASE_DISPUTE, {"t": admin.team_id}, admin.token)
    return {e["node"]["id"]: e["node"] for e in data["team"]["purchases"]["edges"]}


async def dispute_alerts(admin: Actor) -> list[BillingAlert]:
    return await BillingAlert.filter(
        team_id=uuid.UUID(admin.team_id), kind=AlertKind.PAYMENT_FAILED
    ).all()


async def suspended(admin: Actor) -> bool:
    return (await CreditAccount.get(team_id=uuid.UUID(admin.team_id))).invoicing_suspended


async def test_dispute_after_spending_is_owed_until_a_later_purchase_pays_it(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor, ach: RecordedAch
) -> None:
    first = await paid(api, client, admin, "40.00")
    assert await spend(api, operator, admin, "35.00", "u1") == []
    dispute = dispute_event("charge.dispute.created", first, 4000)
    outcome = (await deliver(client, dispute)).json()["outcome"]
    assert outcome == f"withdrew {dollars(5)} units, shortfall {dollars(35)} units"
    stored = await Purchase.get(id=uuid.UUID(first["id"]))
    assert (stored.withdrawn_amount, stored.shortfall_amount, stored.shortfall_paid) == (
        dollars(5),
        dollars(35),
        0,
    )
    assert await audit() == []
    nodes = await purchase_nodes(api, admin)
    assert nodes[first["id"]] == {
        "id": first["id"],
        "disputedAmount": "40.00",
        "withdrawnAmount": "5.00",
        "shortfallAmount": "35.00",
        "shortfallOwed": "35.00",
        "disputeWonAt": None,
    }

    # Invoiced billing is suspended: raising the limit lets no usage beyond credits through.
    changed = await api.ok(LIMIT, {"t": admin.team_id, "l": "100.00"}, admin.token)
    assert changed["setInvoicedSpendingLimit"]["errors"] == []
    state = await credits_state(api, admin)
    assert (state["total"], state["invoicingSuspended"], state["invoicedRemaining"]) == (
        "0.00",
        True,
        "0.00",
    )
    assert await spend(api, operator, admin, "1.00", "u2") == ["INVOICED_LIMIT_REACHED"]
    alerts = await dispute_alerts(admin)
    assert [a.dedupe_key.endswith(f":dispute:{first['id']}") for a in alerts] == [True]

    # The same event again, and the same dispute under another event id: nothing twice.
    assert (await deliver(client, dispute)).json()["outcome"] == "duplicate"
    again = dispute_event("charge.dispute.created", first, 4000)
    assert (await deliver(client, again)).json()["outcome"] == "withdrew 0 units"
    assert len(await dispute_alerts(admin)) == 1
    stored = await Purchase.get(id=stored.id)
    assert (stored.withdrawn_amount, stored.shortfall_amount) == (dollars(5), dollars(35))
    assert await audit() == []

    # A later $50 purchase pays the $35 first and lifts the suspension.
    second = await paid(api, client, admin, "50.00")
    stored = await Purchase.get(id=stored.id)
    paying = await Purchase.get(id=uuid.UUID(second["id"]))
    assert (stored.shortfall_paid, paying.covered_shortfall) == (dollars(35), dollars(35))
    assert (await purchase_nodes(api, admin))[first["id"]]["shortfallOwed"] == "0.00"
    state = await credits_state(api, admin)
    assert (state["prepaid"], state["invoicingSuspended"], state["invoicedRemaining"]) == (
        "15.00",
        False,
        "100.00",
    )
    assert await spend(api, operator, admin, "20.00", "u3") == []  # $15 credits, $5 invoiced
    assert await audit() == []
    # Replaying the settlement changes nothing.
    replay = event_for("payment_intent.succeeded", second, admin)
    assert (await deliver(client, replay)).json()["outcome"] == "purchase SUCCEEDED -> SUCCEEDED"
    assert (await Purchase.get(id=paying.id)).covered_shortfall == dollars(35)

    # Won later: the $5 withdrawn and the $35 the second purchase paid come back.
    won = dispute_event("charge.dispute.closed", first, 4000, "won")
    outcome = (await deliver(client, won)).json()["outcome"]
    assert outcome == f"dispute won: restored {dollars(40)} units"
    assert (await credits_of(api, admin))["prepaid"] == "40.00"
    assert (await deliver(client, won)).json()["outcome"] == "duplicate"
    won_again = dispute_event("charge.dispute.closed", first, 4000, "won")
    assert (await deliver(client, won_again)).json()["outcome"] == "dispute already won"
    late = dispute_event("charge.dispute.created", first, 4000)
    assert (await deliver(client, late)).json()["outcome"] == "withdrew 0 units"
    stored = await Purchase.get(id=stored.id)
    assert stored.dispute_won_at is not None
    assert stored.restored_amount == dollars(40)
    assert (await credits_of(api, admin))["prepaid"] == "40.00"
    assert not await suspended(admin)
    assert len(await dispute_alerts(admin)) == 1
    assert await audit() == []


async def test_a_won_dispute_clears_what_was_never_paid(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor, ach: RecordedAch
) -> None:
    first = await paid(api, client, admin, "40.00")
    assert await spend(api, operator, admin, "35.00", "u1") == []
    await deliver(client, dispute_event("charge.dispute.created", first, 4000))
    assert await suspended(admin)
    lost = dispute_event("charge.dispute.closed", first, 4000, "lost")
    assert (await deliver(client, lost)).json()["outcome"] == "dispute lost"
    assert await suspended(admin)
    won = dispute_event("charge.dispute.closed", first, 4000, "won")
    assert (await deliver(client, won)).json()[
        "outcome"
    ] == f"dispute won: restored {dollars(5)} units, resumed"
    assert (await credits_of(api, admin))["prepaid"] == "5.00"
    assert not await suspended(admin)
    # Nothing is owed any more: the next purchase keeps all of its credits.
    await paid(api, client, admin, "10.00")
    assert (await credits_of(api, admin))["prepaid"] == "15.00"
    assert await audit() == []


async def test_a_paid_invoice_does_not_lift_a_suspension_for_a_shortfall(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor, ach: RecordedAch
) -> None:
    first = await paid(api, client, admin, "40.00")
    assert await spend(api, operator, admin, "35.00", "u1") == []
    await deliver(client, dispute_event("charge.dispute.created", first, 4000))
    invoice = await Invoice.create(
        id=uuid.uuid4(),
        team_id=uuid.UUID(admin.team_id),
        number="CL-TEST-0001",
        source_key=f"test:{admin.team_id}",
        kind=InvoiceKind.MONTHLY_USAGE,
        status=InvoiceStatus.PAYMENT_FAILED,
        period="2026-01",
        subtotal_cents=1000,
        total_cents=1000,
        issued_at=clock.now(),
    )
    # Its payment leaves the dispute's shortfall owed: still suspended.
    await collection.record_paid(invoice, "pi_paid")
    assert await suspended(admin)
    # Paying the shortfall, with a failed invoice still open, does not lift it either.
    await Invoice.filter(id=invoice.id).update(status=InvoiceStatus.PAYMENT_FAILED)
    await paid(api, client, admin, "50.00")
    assert (await Purchase.get(id=uuid.UUID(first["id"]))).shortfall_paid == dollars(35)
    assert await suspended(admin)
    await collection.record_paid(invoice, "pi_paid")
    assert not await suspended(admin)


async def test_a_refund_after_a_won_dispute_counts_what_was_given_back(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    purchase = await paid(api, client, admin, "40.00")
    await deliver(client, dispute_event("charge.dispute.created", purchase, 1000))
    assert (await credits_of(api, admin))["prepaid"] == "30.00"
    await deliver(client, dispute_event("charge.dispute.closed", purchase, 1000, "won"))
    assert (await credits_of(api, admin))["prepaid"] == "40.00"
    refund = charge_event(
        "charge.refunded",
        intent_id=purchase["paymentIntentId"],
        amount_cents=4000,
        refunded_cents=2000,
    )
    # The $10 the dispute took was given back, so the refund takes its full $20.
    assert (await deliver(client, refund)).json()["outcome"] == f"withdrew {dollars(20)} units"
    assert (await credits_of(api, admin))["prepaid"] == "20.00"
    assert not await suspended(admin)
    assert await audit() == []


ORDER = ("succeeded", "created", "won")


async def test_every_order_of_success_dispute_and_win_ends_alike(
    api: Api, client: httpx.AsyncClient, admin: Actor, ach: RecordedAch
) -> None:
    """No spending: whatever the order, a won dispute leaves the purchase's credits whole."""
    for n, order in enumerate(itertools.permutations(ORDER), start=1):
        purchase = await bank_purchase(api, admin, "10.00")
        events = {
            "succeeded": event_for("payment_intent.succeeded", purchase, admin),
            "created": dispute_event("charge.dispute.created", purchase, 1000),
            "won": dispute_event("charge.dispute.closed", purchase, 1000, "won"),
        }
        for name in order:
            assert (await deliver(client, events[name])).status_code == 200
        for name in reversed(order):
            assert (await deliver(client, events[name])).json()["outcome"] == "duplicate"
        stored = await Purchase.get(id=uuid.UUID(purchase["id"]))
        assert stored.dispute_won_at is not None, order
        assert stored.shortfall_amount == 0, order
        assert (await credits_of(api, admin))["prepaid"] == f"{10 * n}.00", order
        assert not await suspended(admin)
    team = uuid.UUID(admin.team_id)
    assert await CreditGrant.filter(team_id=team).count() >= 6
    assert await dispute_alerts(admin) == []
    assert await audit() == []
