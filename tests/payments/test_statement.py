"""The statement (`Team.ledger`) reconciles: after grants, promo codes, purchases, usage,
expiry, a refund and a dispute, every entry's balance is the one before it plus its
amount, and the newest equals `Credits.total` to the last 1e-8."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from app.kit import clock
from tests.support.api import Actor, Api
from tests.support.billing import grant
from tests.support.history import all_ledger, record
from tests.support.payments import (
    RecordedAch,
    bank_purchase,
    charge_event,
    credits_of,
    deliver,
    event_for,
)

PROMO = """mutation($c: String!, $a: Decimal!) { createPromoCode(input: {code: $c, amount: $a}) {
  errors { code } } }"""
REDEEM = """mutation($t: ID!, $c: String!) { redeemPromoCode(input: {teamId: $t, code: $c}) {
  errors { code } } }"""


async def paid(api: Api, client: httpx.AsyncClient, admin: Actor, amount: str) -> dict[str, Any]:
    purchase = await bank_purchase(api, admin, amount)
    outcome = (await deliver(client, event_for("payment_intent.succeeded", purchase, admin))).json()
    assert outcome["outcome"] == "purchase PROCESSING -> SUCCEEDED", outcome
    return purchase


def reconciled(entries: list[dict[str, Any]]) -> None:
    """Newest first: each balance is the older entry's balance plus this entry's amount."""
    oldest = entries[-1]
    assert Decimal(oldest["balanceAfter"]) == Decimal(oldest["amount"])
    for newer, older in itertools.pairwise(entries):
        assert Decimal(newer["balanceAfter"]) == Decimal(older["balanceAfter"]) + Decimal(
            newer["amount"]
        ), (newer, older)


async def test_statement_reconciles_to_credits_total_after_every_kind_of_movement(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor, ach: RecordedAch
) -> None:
    start = datetime(2026, 5, 4, 9, tzinfo=UTC)
    clock.freeze(start)
    expires = (start + timedelta(hours=1)).isoformat()
    await grant(api, operator, admin.team_id, "0.12345678", description="welcome")
    await grant(api, operator, admin.team_id, "2.00", "PROMOTIONAL", expires_at=expires)
    assert (await api.ok(PROMO, {"c": "SPRING", "a": "1.50"}, operator.token))["createPromoCode"][
        "errors"
    ] == []
    assert (await api.ok(REDEEM, {"t": admin.team_id, "c": "SPRING"}, admin.token))[
        "redeemPromoCode"
    ]["errors"] == []
    refunded = await paid(api, client, admin, "10.00")
    disputed = await paid(api, client, admin, "20.00")
    await record(api, operator, admin.team_id, "0.00000001", "tiny", description="one unit")
    await record(api, operator, admin.team_id, "1.00000003", "u1", description="draws two grants")
    # The promotional grant expires; its rest leaves the balance at its expiry instant.
    clock.freeze(start + timedelta(hours=2))
    refund = charge_event(
        "charge.refunded",
        intent_id=refunded["paymentIntentId"],
        amount_cents=1000,
        refunded_cents=400,
    )
    assert (await deliver(client, refund)).status_code == 200
    dispute = charge_event(
        "charge.dispute.created", intent_id=disputed["paymentIntentId"], amount_cents=2000
    )
    assert (await deliver(client, dispute)).status_code == 200
    await record(api, operator, admin.team_id, "3.5", "u2")

    entries = await all_ledger(api, admin, admin.team_id, first=3)
    total = (await credits_of(api, admin))["total"]
    assert Decimal(entries[0]["balanceAfter"]) == Decimal(total)
    reconciled(entries)
    kinds = [e["kind"] for e in reversed(entries)]
    assert kinds[:5] == ["GRANT", "GRANT", "PROMO_CODE", "PURCHASE", "PURCHASE"]
    for kind in ("USAGE", "EXPIRY", "REFUND", "DISPUTE"):
        assert kind in kinds, kinds
    by_kind = {e["kind"]: e for e in entries}
    assert Decimal(by_kind["REFUND"]["amount"]) == Decimal("-4.00")
    assert Decimal(by_kind["DISPUTE"]["amount"]) == Decimal("-20.00")
    usage = [e for e in entries if e["kind"] == "USAGE"]
    assert {e["description"] for e in usage} >= {"one unit", "draws two grants"}
    # A time window reads the same balances as the whole statement.
    window = await all_ledger(
        api,
        admin,
        admin.team_id,
        first=2,
        start=(start + timedelta(hours=1)).isoformat(),
        end=(start + timedelta(hours=3)).isoformat(),
    )
    whole = {e["id"]: e["balanceAfter"] for e in entries}
    assert window
    assert all(whole[e["id"]] == e["balanceAfter"] for e in window)
