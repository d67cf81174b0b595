"""Text the database refuses (a NUL byte, a lone surrogate) in any GraphQL argument:
INVALID_INPUT on the mutation's field, or a top-level INVALID_INPUT, never INTERNAL, and
nothing stored (docs/inputs.md, "Text")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.credits.models import CreditGrant, UsageRecord
from app.kit import text
from app.teams import tokens
from app.teams.models import Team, User
from tests.support.api import JWT_SECRET, Actor, Api, sign_up
from tests.support.billing import GRANT, USAGE, grant
from tests.support.invoices import BERLIN, UPDATE_ADDRESS

BAD = ["nul\x00byte", "lone \ud800 surrogate", "\udfff", "\x00"]


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None
) -> dict[str, Any]:
    """JSON with ASCII escapes: the only way a lone surrogate travels (as `\\ud800`)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables}).encode()
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def user_error(body: dict[str, Any], mutation: str) -> dict[str, Any]:
    assert not body.get("errors"), body
    errors = body["data"][mutation]["errors"]
    assert len(errors) == 1, errors
    error: dict[str, Any] = errors[0]
    return error


def top_level(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
    return error  # type: ignore[no-any-return]


def test_the_helper() -> None:
    for value in BAD:
        assert not text.is_storable(value)
        assert text.find({"a": [1, {"b": value}]}) == text.BadText("a.1.b")
    assert text.is_storable("émoji 😀 and \t tabs")
    assert text.find({"k\x00": "v"}) == text.BadText("k\x00")


@pytest.mark.parametrize("bad", BAD)
async def test_payload_mutations_answer_on_the_field(
    client: httpx.AsyncClient, api: Api, admin: Actor, operator: Actor, bad: str
) -> None:
    cases: list[tuple[str, str, dict[str, Any], str, str]] = [
        (
            "mutation($n: String!) { createTeam(input: {name: $n}) { team { id } errors { code field } } }",
            "createTeam", {"n": bad}, admin.token, "name",
        ),
        (
            'mutation { createTeam(input: {name: "x\\u0000"}) { team { id } errors { code field } } }',
            "createTeam", {}, admin.token, "name",
        ),
        (
            "mutation($t: ID!, $e: String!) { addTeamMember(input: {teamId: $t, email: $e}) "
            "{ errors { code field } } }",
            "addTeamMember", {"t": admin.team_id, "e": f"x{bad}@example.com"}, admin.token, "email",
        ),
        (
            "mutation($t: ID!, $c: String!) { redeemPromoCode(input: {teamId: $t, code: $c}) "
            "{ errors { code field } } }",
            "redeemPromoCode", {"t": admin.team_id, "c": bad}, admin.token, "code",
        ),
        (
            "mutation($t: ID!, $k: String) { purchaseCredits(input: {teamId: $t, amount: \"25.00\", "
            "idempotencyKey: $k}) { errors { code field } } }",
            "purchaseCredits", {"t": admin.team_id, "k": bad}, admin.token, "idempotencyKey",
        ),
        (GRANT, "grantCredits", {"t": admin.team_id, "a": "1.00", "k": "FREE", "d": bad},
         operator.token, "description"),
        (USAGE, "recordUsage", {"t": admin.team_id, "a": "0.01", "key": bad}, operator.token,
         "idempotencyKey"),
        (USAGE, "recordUsage", {"t": admin.team_id, "a": "0.01", "key": "k", "d": bad},
         operator.token, "description"),
        (UPDATE_ADDRESS, "updateBillingAddress",
         {"input": {**BERLIN, "teamId": admin.team_id, "line1": bad}}, admin.token, "line1"),
        (UPDATE_ADDRESS, "updateBillingAddress",
         {"input": {**BERLIN, "teamId": admin.team_id, "taxId": {"type": "eu_vat", "value": bad}}},
         admin.token, "taxId.value"),
        (
            "mutation($t: ID!, $id: ID!) { setDefaultPaymentMethod(input: {teamId: $t, "
            "paymentMethodId: $id}) { errors { code field } } }",
            "setDefaultPaymentMethod", {"t": admin.team_id, "id": bad}, admin.token, "paymentMethodId",
        ),
        (
            "mutation($t: ID!) { removeTeamMember(input: {teamId: $t, email: \"a@b.c\"}) "
            "{ errors { code field } } }",
            "removeTeamMember", {"t": bad}, admin.token, "teamId",
        ),
    ]  # fmt: skip
    for query, mutation, variables, token, field in cases:
        body = await post(client, query, variables, token)
        error = user_error(body, mutation)
        assert (error["code"], error["field"]) == ("INVALID_INPUT", field), query
    assert await Team.all().count() == 2  # the two personal teams
    assert await CreditGrant.all().count() == 0
    assert await UsageRecord.all().count() == 0


async def test_a_bad_event_fails_alone_in_a_batch(
    client: httpx.AsyncClient, api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    batch = """mutation($events: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $events}) {
      results { usage { amount } errors { code field } } errors { code } } }"""
    events = [
        {"teamId": admin.team_id, "amount": "0.10", "idempotencyKey": "a"},
        {"teamId": admin.team_id, "amount": "0.10", "idempotencyKey": "b\x00"},
        {"teamId": admin.team_id, "amount": "0.10", "idempotencyKey": "c", "description": "\ud800"},
        {"teamId": admin.team_id, "amount": "0.10", "idempotencyKey": "d"},
    ]
    body = await post(client, batch, {"events": events}, operator.token)
    assert not body.get("errors"), body
    results = body["data"]["recordUsageBatch"]["results"]
    assert [r["errors"] for r in results] == [
        [],
        [{"code": "INVALID_INPUT", "field": "idempotencyKey"}],
        [{"code": "INVALID_INPUT", "field": "description"}],
        [],
    ]
    assert await UsageRecord.all().count() == 2


@pytest.mark.parametrize("bad", BAD)
async def test_query_arguments_answer_at_the_top_level(
    client: httpx.AsyncClient, admin: Actor, bad: str
) -> None:
    queries: list[tuple[str, dict[str, Any], str]] = [
        ("query($id: ID!) { team(id: $id) { id } }", {"id": bad}, "$id"),
        (
            "query($t: ID!, $c: String) { team(id: $t) { purchases(after: $c) { edges { cursor } } } }",
            {"t": admin.team_id, "c": bad}, "$c",
        ),
        (
            "query($t: ID!, $c: String) { team(id: $t) { ...F } } "
            "fragment F on Team { invoices(after: $c) { edges { cursor } } }",
            {"t": admin.team_id, "c": bad}, "$c",
        ),
        ('{ team(id: "x\\u0000") { id } }', {}, "team.id"),
    ]  # fmt: skip
    for query, variables, field in queries:
        error = top_level(await post(client, query, variables, admin.token))
        assert error["extensions"]["field"] == field, query


async def test_a_selection_inside_a_mutation_is_still_checked(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    query = """mutation($n: String!, $c: String) { createTeam(input: {name: $n}) {
      team { purchases(after: $c) { edges { cursor } } } errors { code } } }"""
    error = top_level(await post(client, query, {"n": "Fine", "c": "\x00"}, admin.token))
    assert error["extensions"]["field"] == "$c"
    assert await Team.all().count() == 1


@pytest.mark.parametrize("claim", ["sub", "email", "name"])
@pytest.mark.parametrize("bad", BAD)
async def test_tokens_with_unstorable_claims_are_unauthenticated(
    api: Api, claim: str, bad: str
) -> None:
    claims = {"sub": "s1", "email": "t@example.com", "name": "T"}
    claims[claim] = bad + ("@x" if claim == "email" else "")
    token = tokens.mint(
        JWT_SECRET, subject=claims["sub"], email=claims["email"], name=claims["name"]
    )
    assert await api.error_code("{ viewer { id } }", token=token) == "UNAUTHENTICATED"
    assert await User.all().count() == 0
    assert (await sign_up(api, "fine@example.com")).team_id
