"""Invoices as the tests read and make them: documents, a billing address, October's usage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from app.events.commit import atomic
from app.invoices import issuing
from app.invoices.models import Invoice
from app.kit import clock
from app.payments import charges, methods
from tests.support.api import Actor, Api
from tests.support.billing import set_limit, use

OCT_20 = datetime(2026, 10, 20, 12, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, 0, 10, tzinfo=UTC)

ADDRESS_FIELDS = (
    "name organization email line1 line2 city state postalCode country taxId { type value }"
)
INVOICE_FIELDS = f"""id number kind status currency period periodStart periodEnd subtotal tax total
  issuedAt paidAt failureReason pdfUrl
  lines {{ description quantity unitAmount amount exactAmount }}
  billingAddress {{ {ADDRESS_FIELDS} }}"""
INVOICES = f"""query($t: ID!, $first: Int, $after: String) {{ team(id: $t) {{
  invoices(first: $first, after: $after) {{
    edges {{ cursor node {{ {INVOICE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"""
UPCOMING = f"""query($t: ID!) {{ team(id: $t) {{ upcomingInvoice {{ {INVOICE_FIELDS} }} }} }}"""
UPDATE_ADDRESS = f"""mutation($input: UpdateBillingAddressInput!) {{
  updateBillingAddress(input: $input) {{
    billingAddress {{ {ADDRESS_FIELDS} }} errors {{ code field message }} }} }}"""

BERLIN = {
    "name": "Ada Lovelace",
    "organization": "Analytical Engines GmbH",
    "email": "billing@engines.example",
    "line1": "Unter den Linden 1",
    "city": "Berlin",
    "postalCode": "10117",
    "country": "DE",
    "taxId": {"type": "eu_vat", "value": "DE 136 695 976"},
}


async def save_address(api: Api, actor: Actor, **fields: Any) -> dict[str, Any]:
    data = await api.ok(UPDATE_ADDRESS, {"input": {"teamId": actor.team_id, **fields}}, actor.token)
    payload: dict[str, Any] = data["updateBillingAddress"]
    return payload


async def list_invoices(
    api: Api,
    actor: Actor,
    first: int | None = None,
    after: str | None = None,
    team_id: str | None = None,
) -> dict[str, Any]:
    variables = {"t": team_id or actor.team_id, "first": first, "after": after}
    data = await api.ok(INVOICES, variables, actor.token)
    connection: dict[str, Any] = data["team"]["invoices"]
    return connection


async def only_invoice(api: Api, actor: Actor) -> dict[str, Any]:
    edges = (await list_invoices(api, actor))["edges"]
    assert len(edges) == 1, edges
    node: dict[str, Any] = edges[0]["node"]
    return node


async def card_on_file(actor: Actor, test_pm: str) -> None:
    """Puts a localstripe test card on file as the team's default."""
    await methods.add_payment_method(uuid.UUID(actor.team_id), test_pm, make_default=True)


async def invoiced_usage(
    api: Api, operator: Actor, actor: Actor, items: list[tuple[str, str | None]], prefix: str = "u"
) -> None:
    """Records usage that all lands on the invoiced tier (the team has no credits)."""
    for index, (amount, description) in enumerate(items):
        result = await use(
            api, operator, actor.team_id, amount, f"{prefix}-{index}", description=description
        )
        assert result["errors"] == [], result
        assert result["usage"]["invoiced"] == result["usage"]["amount"]


# Exact sums per description and their roundings, chosen so that rounding the total once
# (13.36457201 -> 13.36) differs from summing the rounded lines (3.23 + 10.13 + 0.01 = 13.37).
OCTOBER_USAGE: list[tuple[str, str | None]] = [
    ("1.234567", "GPU seconds"),
    ("2.000005", "GPU seconds"),
    ("0.004999", "storage"),
    ("0.000001", "storage"),
    ("10.125", None),
    ("0.00000001", "API usage"),
]
OCTOBER_LINES = [
    {
        "description": "API usage",
        "quantity": "1",
        "unitAmount": "10.13",
        "amount": "10.13",
        "exactAmount": "10.12500001",
    },
    {
        "description": "GPU seconds",
        "quantity": "1",
        "unitAmount": "3.23",
        "amount": "3.23",
        "exactAmount": "3.234572",
    },
    {
        "description": "storage",
        "quantity": "1",
        "unitAmount": "0.01",
        "amount": "0.01",
        "exactAmount": "0.005",
    },
]


async def october_team(api: Api, operator: Actor, actor: Actor, card: str | None) -> None:
    """A team with invoiced billing, a card, an address, and October's usage."""
    clock.freeze(OCT_20)
    if card:
        await card_on_file(actor, card)
    await set_limit(actor.team_id, "100.00")
    assert (await save_address(api, actor, **BERLIN))["errors"] == []
    await invoiced_usage(api, operator, actor, OCTOBER_USAGE)


def count_charges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the idempotency key of every off-session charge."""
    keys: list[str] = []
    real = charges.charge_default_method_off_session

    async def counting(
        team_id: uuid.UUID, amount_cents: int, **kwargs: Any
    ) -> charges.ChargeResult:
        keys.append(kwargs["idempotency_key"])
        return await real(team_id, amount_cents, **kwargs)

    monkeypatch.setattr(charges, "charge_default_method_off_session", counting)
    return keys


@dataclass
class FakePurchase:
    """Stands in for payments' Purchase where only the invoice is under test."""

    id: uuid.UUID
    team_id: object
    amount: int
    payment_intent_id: str | None
    settled_at: datetime | None


async def purchase_invoice_for(actor: Actor, dollars: str) -> Invoice:
    from app.kit.money import parse

    purchase = FakePurchase(
        uuid.uuid4(), uuid.UUID(actor.team_id), parse(dollars), "pi_test", clock.now()
    )
    async with atomic() as tx:  # as a settlement does: its invoice.issued event goes with it
        return await issuing.issue_purchase_invoice(tx.conn, purchase)
