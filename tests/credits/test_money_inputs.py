"""Money is a plain ASCII decimal string, and a team's credits stay under MAX_BALANCE
(docs/inputs.md, "Money")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.credits.models import CreditGrant
from app.kit.money import MAX_BALANCE, InvalidAmount, format_units, parse
from tests.support.api import Actor, Api
from tests.support.billing import GRANT, LIMIT, credits, grant

REFUSED = [
    "\u0661\u0660",  # Arabic-Indic digits 1 0
    "\uff11\uff10",  # full-width digits 1 0
    "1_000",
    "+5",
    "-5",
    " 5",
    "5 ",
    "5\n",
    "1e3",
    "1E-2",
    "NaN",
    "Infinity",
    ".5",
    "5.",
    "",
    "0x10",
    "5,00",
    "1" * 41,
]
PROMO = """mutation($c: String!, $a: Decimal!) { createPromoCode(input: {code: $c, amount: $a}) {
  errors { code field } } }"""
REDEEM = """mutation($t: ID!, $c: String!) { redeemPromoCode(input: {teamId: $t, code: $c}) {
  errors { code field message } } }"""


@pytest.mark.parametrize("text", REFUSED)
def test_only_plain_decimal_strings_parse(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse(text)


@pytest.mark.parametrize("value", [5, 5.0, True, None, ["5"], {"a": "5"}])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(InvalidAmount, match="decimal string"):
        parse(value)


def test_what_parses() -> None:
    assert parse("25") == parse("25.00") == parse("025.000000000") == 2_500_000_000
    assert parse("0.00001234") == 1234
    assert parse("1000000000.00") == MAX_BALANCE
    with pytest.raises(InvalidAmount, match=r"at most 1000000000\.00"):
        parse("1000000000.00000001")
    with pytest.raises(InvalidAmount, match="2 decimal places"):
        parse("1.001", places=2)
    assert parse("0", allow_zero=True) == 0


async def _post(client: httpx.AsyncClient, query: str, variables: Any, token: str) -> Any:
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("amount", [*REFUSED[:8], 10, 10.5, True, None, [1]])
async def test_grants_refuse_every_other_shape(
    client: httpx.AsyncClient, admin: Actor, operator: Actor, amount: object
) -> None:
    variables = {"t": admin.team_id, "a": amount, "k": "FREE"}
    body = await _post(client, GRANT, variables, operator.token)
    if amount is None:
        # Decimal! with null: the request's own fault, refused before execution.
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    else:
        assert body["data"]["grantCredits"]["errors"][0]["code"] == "INVALID_AMOUNT", body
        assert body["data"]["grantCredits"]["errors"][0]["field"] == "amount"
    assert await CreditGrant.all().count() == 0


async def test_literal_numbers_are_refused(api: Api, admin: Actor, operator: Actor) -> None:
    for literal in ["10", "10.5", "1e3"]:
        data = await api.ok(
            f'mutation {{ grantCredits(input: {{teamId: "{admin.team_id}", amount: {literal}}}) '
            "{ errors { code field } } }",
            token=operator.token,
        )
        assert data["grantCredits"]["errors"] == [{"code": "INVALID_AMOUNT", "field": "amount"}]


async def test_grants_stop_at_the_maximum_balance(
    client: httpx.AsyncClient, api: Api, admin: Actor, operator: Actor
) -> None:
    """Ten grants of 9,999,999,999.99 used to overflow BIGINT into INTERNAL."""
    for _ in range(10):
        body = await _post(
            client, GRANT, {"t": admin.team_id, "a": "9999999999.99", "k": "FREE"}, operator.token
        )
        assert body["data"]["grantCredits"]["errors"][0]["code"] == "INVALID_AMOUNT"
    half = format_units(MAX_BALANCE // 2)
    await grant(api, operator, admin.team_id, half)
    await grant(api, operator, admin.team_id, half, "PREPAID")
    assert (await credits(api, admin))["total"] == format_units(MAX_BALANCE)
    body = await _post(
        client, GRANT, {"t": admin.team_id, "a": "0.00000001", "k": "FREE"}, operator.token
    )
    (error,) = body["data"]["grantCredits"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID_AMOUNT", "amount")
    assert "at most 0.00 more fits" in error["message"]
    assert (await credits(api, admin))["total"] == format_units(MAX_BALANCE)


async def test_a_promo_code_cannot_pass_the_maximum(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, format_units(MAX_BALANCE - 10 * 100_000_000))
    data = await api.ok(PROMO, {"c": "TEN01", "a": "10.01"}, operator.token)
    assert data["createPromoCode"]["errors"] == []
    data = await api.ok(REDEEM, {"t": admin.team_id, "c": "TEN01"}, admin.token)
    (error,) = data["redeemPromoCode"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID_AMOUNT", "code")
    assert await api.ok(PROMO, {"c": "TEN", "a": "10.00"}, operator.token)
    data = await api.ok(REDEEM, {"t": admin.team_id, "c": "TEN"}, admin.token)
    assert data["redeemPromoCode"]["errors"] == []
    assert (await credits(api, admin))["total"] == format_units(MAX_BALANCE)


async def test_limits_refuse_malformed_and_huge(api: Api, admin: Actor) -> None:
    for limit in ["\u0661\u0660", "+5", "1e6", "99999999999999999999", " 5"]:
        data = await api.ok(LIMIT, {"t": admin.team_id, "l": limit}, admin.token)
        assert data["setInvoicedSpendingLimit"]["errors"][0]["code"] == "INVALID_AMOUNT", limit
