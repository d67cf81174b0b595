"""Compiled plans (app/graphql/fastpath.py) answer exactly as Strawberry does.

Each request goes to two apps on the same database, one with plans and one without;
the responses (status, content type, body bytes) must be identical. Mutations are
compared through idempotent replays, so both answers describe the same stored event.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.credits import service as credits
from app.graphql import fastpath
from app.graphql.schema import schema
from app.main import create_app
from tests.billing import CREDITS, USAGE, grant
from tests.conftest import Actor, Api, sign_up

BATCH = """mutation Ingest($e: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $e}) {
  results { usage { id idempotencyKey amount fromFree fromPrepaid invoiced occurredAt }
  errors { code field message } } errors { code field message } } }"""
ALIASED = """mutation($t: ID!, $k: String!) {
  used: recordUsage(input: {teamId: $t, amount: "0.25", idempotencyKey: $k}) {
    __typename u: usage { key: idempotencyKey amount } usage { id } errors { code } } }"""
TEAM = """query Team($t: ID!) { team(id: $t) { __typename id name members { email role pending }
  credits { total status invoicedRemaining } } }"""
VIEWER = "{ viewer { email isOperator memberships { role team { id name } } } }"


class Pair:
    """The same request against an app with plans and one without."""

    def __init__(self, fast: httpx.AsyncClient, slow: httpx.AsyncClient) -> None:
        self.fast = fast
        self.slow = slow
        self.planned = 0  # requests a plan answered

    async def post(
        self,
        client: httpx.AsyncClient,
        query: str,
        variables: dict[str, Any] | None,
        token: str | None,
        name: str | None = None,
    ) -> tuple[int, str, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query, "variables": variables}
        if name is not None:
            body["operationName"] = name
        response = await client.post("/graphql", json=body, headers=headers)
        # Masked errors carry a fresh id each time.
        text = re.sub(r'"errorId":"[0-9a-f]+"', '"errorId":"-"', response.text)
        return response.status_code, response.headers["content-type"], text

    async def same(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        *,
        name: str | None = None,
        fast_first: bool = False,
        planned: bool = True,
    ) -> dict[str, Any]:
        """Asserts both apps answer alike; returns the parsed body."""
        assert fastpath.compile_plan(schema._schema, query, name) is not None, query
        order = (self.fast, self.slow) if fast_first else (self.slow, self.fast)
        before = self.planned
        first = await self.post(order[0], query, variables, token, name)
        second = await self.post(order[1], query, variables, token, name)
        assert first == second
        assert self.planned == before + planned
        body: dict[str, Any] = json.loads(first[2])
        return body


@pytest.fixture
async def pair(database: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    slow_settings = database.model_copy(update={"graphql_fast_path": False})
    fast_app = create_app(database, manage_db=False)
    slow_app = create_app(slow_settings, manage_db=False)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(fast_app), base_url="http://t") as fast,
        httpx.AsyncClient(transport=httpx.ASGITransport(slow_app), base_url="http://t") as slow,
    ):
        pair = Pair(fast, slow)
        execute = fastpath.execute

        async def counted(*args: Any) -> Any:
            body = await execute(*args)
            pair.planned += body is not None
            return body

        monkeypatch.setattr(fastpath, "execute", counted)
        yield pair


def usage_vars(team: str, amount: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"t": team, "a": amount, "key": key, "d": None, "at": None, **extra}


async def test_record_usage_answers_alike(
    pair: Pair, api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    body = await pair.same(USAGE, usage_vars(admin.team_id, "0.40", "k1"), operator.token)
    assert body["data"]["recordUsage"]["usage"]["fromFree"] == "0.40"
    await pair.same(
        USAGE, usage_vars(admin.team_id, "0.00000001", "k2", d="tiny"), operator.token,
        fast_first=True,
    )  # fmt: skip
    # Rejections: not enough credits, a bad amount, a reused key, an unknown team.
    for variables in (
        usage_vars(admin.team_id, "5.00", "k3"),
        usage_vars(admin.team_id, "abc", "k4"),
        usage_vars(admin.team_id, "0.41", "k1"),
        usage_vars("not-a-team", "0.01", "k5"),
        usage_vars(admin.team_id, "0.01", "k6", at="1999-01-01T00:00:00Z"),
    ):
        body = await pair.same(USAGE, variables, operator.token, fast_first=True)
        assert body["data"]["recordUsage"]["errors"], body
    body = await pair.same(ALIASED, {"t": admin.team_id, "k": "k7"}, operator.token)
    assert body["data"]["used"]["__typename"] == "RecordUsagePayload"


async def test_top_level_errors_answer_alike(pair: Pair, admin: Actor, operator: Actor) -> None:
    variables = usage_vars(admin.team_id, "0.01", "k1")
    for token in (None, "not-a-token", admin.token):
        body = await pair.same(USAGE, variables, token)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] in {
            "UNAUTHENTICATED",
            "FORBIDDEN",
        }
    body = await pair.same(TEAM, {"t": "00000000-0000-0000-0000-000000000000"}, admin.token)
    assert body["data"] == {"team": None}


async def test_unexpected_failures_are_masked_alike(
    pair: Pair, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(credits, "credits_view", broken)
    # Team.credits is non-null: the error nulls the nearest nullable field, `team`.
    body = await pair.same(TEAM, {"t": admin.team_id}, admin.token, name="Team")
    assert body["data"] == {"team": None}
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert body["errors"][0]["path"] == ["team", "credits"]
    assert "fire" not in json.dumps(body)


async def test_batches_and_reads_answer_alike(
    pair: Pair, api: Api, admin: Actor, operator: Actor
) -> None:
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "1.00")
    events = [
        {"teamId": admin.team_id, "amount": "0.60", "idempotencyKey": "a1"},
        {"teamId": other.team_id, "amount": "0.40", "idempotencyKey": "b1"},
        {"teamId": admin.team_id, "amount": "0.60", "idempotencyKey": "a2"},
        {"teamId": "nope", "amount": "0.01", "idempotencyKey": "x"},
        {"teamId": admin.team_id, "amount": "1.2.3", "idempotencyKey": "a3"},
    ]
    body = await pair.same(BATCH, {"e": events}, operator.token, name="Ingest")
    codes = [[e["code"] for e in r["errors"]] for r in body["data"]["recordUsageBatch"]["results"]]
    assert codes == [
        [],
        ["CREDITS_EXHAUSTED"],
        ["CREDITS_EXHAUSTED"],
        ["NOT_FOUND"],
        ["INVALID_AMOUNT"],
    ]
    await pair.same(BATCH, {"e": [events[0]] * 1001}, operator.token)  # over the cap
    await pair.same(CREDITS, {"t": admin.team_id}, admin.token)
    await pair.same(TEAM, {"t": admin.team_id}, admin.token, name="Team")
    await pair.same(TEAM, {"t": admin.team_id}, other.token, name="Team")  # not a member
    await pair.same(VIEWER, None, admin.token)


async def test_documents_without_a_plan_go_to_strawberry(pair: Pair, admin: Actor) -> None:
    unplanned = [
        "query { team(id: 1) { ...F } } fragment F on Team { id }",  # fragments
        "query($s: Boolean!) { viewer { email @include(if: $s) } }",  # directives
        "{ viewer { email } __typename }",  # two root fields
        "{ __schema { queryType { name } } }",  # introspection
        "{ viewer { email } viewer: viewer { name } }",  # one response key, merged
        "{ viewer { memberships { role } memberships { team { id } } } }",
        "{ viewer { nope } }",  # invalid
        "{ viewer { email }",  # unparsable
        "subscription($t: ID!) { creditsUpdated(teamId: $t) { total } }",
    ]
    for query in unplanned:
        assert fastpath.compile_plan(schema._schema, query, None) is None, query
        fast = await pair.post(pair.fast, query, {"s": True}, admin.token)
        slow = await pair.post(pair.slow, query, {"s": True}, admin.token)
        assert fast == slow
    # A plan exists, but the variables do not coerce: Strawberry reports them.
    body = await pair.same(TEAM, {"t": None}, admin.token, name="Team", planned=False)
    assert body["data"] is None
    assert "$t" in body["errors"][0]["message"]
    # The operation name must match the document's.
    assert fastpath.compile_plan(schema._schema, TEAM, "Other") is None


def test_plan_cache_keeps_the_most_recent_documents() -> None:
    cache = fastpath.PlanCache(schema._schema, size=2)
    first, second, third = VIEWER, TEAM, CREDITS
    assert cache.get(first, None) is not None
    assert cache.get(second, None) is not None
    assert cache.get(first, None) is cache.get(first, None)
    assert cache.get(third, None) is not None
    assert list(cache._plans) == [(first, None), (third, None)]


async def test_headers_a_resolver_sets_are_sent(
    pair: Pair, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute = fastpath.execute

    async def with_header(plan: fastpath.Plan, *args: Any) -> Any:
        args[1].response.headers["x-note"] = "kept"  # the context's sub-response
        return await execute(plan, *args)

    monkeypatch.setattr(fastpath, "execute", with_header)
    auth = {"Authorization": f"Bearer {admin.token}"}
    before = pair.planned
    response = await pair.fast.post("/graphql", json={"query": VIEWER}, headers=auth)
    assert response.headers["x-note"] == "kept"
    assert response.json()["data"]["viewer"]["email"] == admin.email
    assert pair.planned == before + 1


def test_long_documents_are_neither_planned_nor_kept() -> None:
    cache = fastpath.PlanCache(schema._schema)
    padded = VIEWER + " " * fastpath.MAX_PLANNED_DOCUMENT
    assert fastpath.compile_plan(schema._schema, padded, None) is not None
    assert cache.get(padded, None) is None
    assert not cache._plans
