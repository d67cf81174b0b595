"""GraphQL execution through HTTP: results, error shapes and request errors.

Every request goes through the app's view on Strawberry's engine. Request errors (the
document does not parse or validate, the variables do not coerce, the body is not a
GraphQL request) answer 200 under `application/json` and 400 without `data` under
`application/graphql-response+json`; refusals are JSON bodies with a code, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.credits import service as credits
from app.graphql.context import Context
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import CREDITS, USAGE, grant

GRAPHQL_RESPONSE = "application/graphql-response+json"
BATCH = """mutation Ingest($e: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $e}) {
  results { usage { id idempotencyKey amount fromFree fromPrepaid invoiced occurredAt }
  errors { code field message } } errors { code field message } } }"""
ALIASED = """mutation($t: ID!, $k: String!) {
  used: recordUsage(input: {teamId: $t, amount: "0.25", idempotencyKey: $k}) {
    __typename u: usage { key: idempotencyKey amount } usage { id } errors { code } } }"""
TEAM = """query Team($t: ID!) { team(id: $t) { __typename id name members { email role pending }
  credits { total status invoicedRemaining } } }"""
VIEWER = "{ viewer { email isOperator memberships { role team { id name } } } }"


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    *,
    accept: str | None = None,
    name: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept is not None:
        headers["Accept"] = accept
    body: dict[str, Any] = {"query": query, "variables": variables}
    if name is not None:
        body["operationName"] = name
    return await client.post("/graphql", json=body, headers=headers)


def usage_vars(team: str, amount: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"t": team, "a": amount, "key": key, "d": None, "at": None, **extra}


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_record_usage_results(api: Api, admin: Actor, operator: Actor) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    body = await api.raw(USAGE, usage_vars(admin.team_id, "0.40", "k1"), operator.token)
    usage = body["data"]["recordUsage"]
    assert usage["errors"] == []
    assert usage["usage"]["fromFree"] == "0.40"
    assert usage["usage"]["idempotencyKey"] == "k1"
    assert usage["credits"]["total"] == "0.60"
    tiny = usage_vars(admin.team_id, "0.00000001", "k2", d="tiny")
    usage = (await api.raw(USAGE, tiny, operator.token))["data"]["recordUsage"]
    assert usage["usage"]["amount"] == "0.00000001"
    assert usage["usage"]["description"] == "tiny"
    # Rejections are UserErrors in the payload, with nothing recorded.
    for variables, code in (
        (usage_vars(admin.team_id, "5.00", "k3"), "CREDITS_EXHAUSTED"),
        (usage_vars(admin.team_id, "abc", "k4"), "INVALID_AMOUNT"),
        (usage_vars(admin.team_id, "0.41", "k1"), "IDEMPOTENCY_KEY_REUSED"),
        (usage_vars("not-a-team", "0.01", "k5"), "NOT_FOUND"),
        (usage_vars(admin.team_id, "0.01", "k6", at="1999-01-01T00:00:00Z"), None),
    ):
        body = await api.raw(USAGE, variables, operator.token)
        assert "errors" not in body, body
        payload = body["data"]["recordUsage"]
        assert payload["usage"] is None, payload
        assert payload["errors"], payload
        if code is not None:
            assert payload["errors"][0]["code"] == code, payload
    body = await api.raw(ALIASED, {"t": admin.team_id, "k": "k7"}, operator.token)
    used = body["data"]["used"]
    assert used["__typename"] == "RecordUsagePayload"
    assert used["u"] == {"key": "k7", "amount": "0.25"}
    assert used["usage"]["id"]


async def test_top_level_errors_carry_a_code(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    variables = usage_vars(admin.team_id, "0.01", "k1")
    for token, code in ((None, "UNAUTHENTICATED"), ("not-a-token", "UNAUTHENTICATED"), (admin.token, "FORBIDDEN")):  # fmt: skip
        for accept in (None, GRAPHQL_RESPONSE):
            response = await post(client, USAGE, variables, token, accept=accept)
            # An execution error, not a request error: 200 under either media type.
            assert response.status_code == 200
            body = response.json()
            assert body["data"] is None
            assert codes(body) == [code]
            assert body["errors"][0]["path"] == ["recordUsage"]
    missing = {"t": "00000000-0000-0000-0000-000000000000"}
    body = (await post(client, TEAM, missing, admin.token, name="Team")).json()
    assert body["data"] == {"team": None}
    assert codes(body) == ["NOT_FOUND"]


async def test_unexpected_failures_are_masked(
    client: httpx.AsyncClient, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(credits, "credits_view", broken)
    for accept in (None, GRAPHQL_RESPONSE):
        response = await post(client, TEAM, {"t": admin.team_id}, admin.token, accept=accept)
        assert response.status_code == 200
        body = response.json()
        # Team.credits is non-null: the error nulls the nearest nullable field, `team`.
        assert body["data"] == {"team": None}
        assert codes(body) == ["INTERNAL"]
        assert body["errors"][0]["path"] == ["team", "credits"]
        assert body["errors"][0]["extensions"]["errorId"]
        assert "fire" not in response.text


async def test_batches_and_reads(api: Api, admin: Actor, operator: Actor) -> None:
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "1.00")
    events = [
        {"teamId": admin.team_id, "amount": "0.60", "idempotencyKey": "a1"},
        {"teamId": other.team_id, "amount": "0.40", "idempotencyKey": "b1"},
        {"teamId": admin.team_id, "amount": "0.60", "idempotencyKey": "a2"},
        {"teamId": "nope", "amount": "0.01", "idempotencyKey": "x"},
        {"teamId": admin.team_id, "amount": "1.2.3", "idempotencyKey": "a3"},
    ]
    data = await api.ok(BATCH, {"e": events}, operator.token)
    results = data["recordUsageBatch"]["results"]
    assert [[e["code"] for e in r["errors"]] for r in results] == [
        [],
        ["CREDITS_EXHAUSTED"],
        ["CREDITS_EXHAUSTED"],
        ["NOT_FOUND"],
        ["INVALID_AMOUNT"],
    ]
    assert results[0]["usage"]["fromFree"] == "0.60"
    over = await api.ok(BATCH, {"e": [events[0]] * 1001}, operator.token)
    assert [e["code"] for e in over["recordUsageBatch"]["errors"]] == ["INVALID_INPUT"]
    assert (await api.ok(CREDITS, {"t": admin.team_id}, admin.token))["team"]["credits"][
        "total"
    ] == "0.40"
    team = (await api.ok(TEAM, {"t": admin.team_id}, admin.token))["team"]
    assert team["__typename"] == "Team"
    assert team["members"] == [{"email": admin.email, "role": "ADMIN", "pending": False}]
    body = await api.raw(TEAM, {"t": admin.team_id}, other.token)  # not a member
    assert body["data"] == {"team": None}
    assert codes(body) == ["NOT_FOUND"]
    viewer = (await api.ok(VIEWER, None, admin.token))["viewer"]
    assert viewer["email"] == admin.email
    assert viewer["memberships"][0]["team"]["id"] == admin.team_id


async def test_fragments_directives_and_merged_fields(api: Api, admin: Actor) -> None:
    team = {"t": admin.team_id}
    data = await api.ok(
        "query($t: ID!) { team(id: $t) { ...F } } fragment F on Team { id }", team, admin.token
    )
    assert data == {"team": {"id": admin.team_id}}
    query = "query($s: Boolean!) { viewer { email @include(if: $s) name @skip(if: $s) } }"
    assert (await api.ok(query, {"s": True}, admin.token))["viewer"] == {"email": admin.email}
    data = await api.ok("{ viewer { email } __typename }", None, admin.token)
    assert data["__typename"] == "Query"
    data = await api.ok(
        "{ viewer { memberships { role } memberships { team { id } } } }", None, admin.token
    )
    assert data["viewer"]["memberships"] == [{"role": "ADMIN", "team": {"id": admin.team_id}}]
    data = await api.ok("{ __schema { queryType { name } } }", None, admin.token)
    assert data == {"__schema": {"queryType": {"name": "Query"}}}


@pytest.mark.parametrize(
    ("query", "variables", "mentions"),
    [
        ("{ viewer { email }", None, "Syntax Error"),  # does not parse
        ("{ viewer { nope } }", None, "nope"),  # does not validate
        (TEAM, {"t": None}, "$t"),  # a non-null variable given null
        (TEAM, {}, "$t"),  # a non-null variable left out
        (BATCH, {"e": [{"teamId": "t", "idempotencyKey": "k"}]}, "amount"),  # field missing
        (BATCH, {"e": [{"teamId": "t", "amount": "1", "idempotencyKey": "k", "x": 1}]}, "x"),
        (BATCH, {"e": [{"teamId": "t", "amount": "1", "idempotencyKey": 5}]}, "idempotencyKey"),
        (BATCH, {"e": "not a list of events"}, "$e"),
    ],
)
async def test_request_errors_answer_by_media_type(
    client: httpx.AsyncClient,
    operator: Actor,
    query: str,
    variables: dict[str, Any] | None,
    mentions: str,
) -> None:
    legacy = await post(client, query, variables, operator.token)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == "application/json"
    body = legacy.json()
    assert body["data"] is None
    assert mentions in body["errors"][0]["message"], body
    assert codes(body) == ["BAD_REQUEST"] * len(body["errors"])
    modern = await post(client, query, variables, operator.token, accept=GRAPHQL_RESPONSE)
    assert modern.status_code == 400
    assert modern.headers["content-type"] == GRAPHQL_RESPONSE
    assert modern.json() == {"errors": body["errors"]}


async def test_a_successful_result_under_either_media_type(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    for accept, media_type in (
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, application/json", "application/json"),
        ("text/html, application/*;q=0.1", "application/json"),
    ):
        response = await post(client, VIEWER, None, admin.token, accept=accept)
        assert response.status_code == 200, accept
        assert response.headers["content-type"] == media_type, accept
        assert response.json()["data"]["viewer"]["email"] == admin.email


async def test_an_accept_header_naming_no_json_type_is_refused(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    for accept in ("text/plain", "application/xml", f"{GRAPHQL_RESPONSE};q=0"):
        response = await post(client, VIEWER, None, admin.token, accept=accept)
        assert response.status_code == 406, accept
        assert codes(response.json()) == ["NOT_ACCEPTABLE"]
    # The IDE still answers a browser's GET without a query.
    ide = await client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"1", b"null", b"true", b"  7 ", b"{nope"])
@pytest.mark.parametrize("accept", [None, GRAPHQL_RESPONSE])
async def test_a_body_that_is_not_a_json_object_is_a_bad_request(
    client: httpx.AsyncClient, body: bytes, accept: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if accept is not None:
        headers["Accept"] = accept
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == (accept or "application/json")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"query": "{ __typename }", "operationName": 3}, "operationName"),
        ({"query": 3}, "query"),
        ({"query": "{ __typename }", "variables": [1]}, "variables"),
        ({"query": "{ __typename }", "extensions": "x"}, "extensions"),
        ({}, "No GraphQL query"),
        ({"query": "query A { __typename }", "operationName": "B"}, '"B"'),
    ],
)
async def test_malformed_parameters_are_bad_requests(
    client: httpx.AsyncClient, body: dict[str, Any], mentions: str
) -> None:
    response = await client.post("/graphql", json=body)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert mentions in error["message"]


async def test_subscriptions_are_refused_over_http(client: httpx.AsyncClient, admin: Actor) -> None:
    query = "subscription($t: ID!) { creditsUpdated(teamId: $t) { total } }"
    auth = {"Authorization": f"Bearer {admin.token}"}
    variables = {"t": admin.team_id}
    for response in (
        await post(client, query, variables, admin.token),
        await post(client, query, variables, admin.token, accept=GRAPHQL_RESPONSE),
        await client.get(
            "/graphql", params={"query": query, "variables": json.dumps(variables)}, headers=auth
        ),
    ):
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "websocket" in error["message"]


async def test_a_mutation_over_get_is_method_not_allowed(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": USAGE, "variables": json.dumps(usage_vars(admin.team_id, "1", "g"))},
        headers={"Authorization": f"Bearer {operator.token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert codes(response.json()) == ["METHOD_NOT_ALLOWED"]
    # A query over GET runs, with variables in the URL.
    response = await client.get(
        "/graphql",
        params={"query": TEAM, "variables": json.dumps({"t": admin.team_id})},
        headers={"Authorization": f"Bearer {admin.token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json()["data"]["team"]["id"] == admin.team_id


async def test_headers_and_status_a_resolver_sets_are_sent(
    client: httpx.AsyncClient, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer = Context.viewer

    async def noting(self: Context) -> Any:
        self.response.headers["x-note"] = "kept"  # the request's sub-response
        return await viewer(self)

    monkeypatch.setattr(Context, "viewer", noting)
    response = await post(client, VIEWER, None, admin.token)
    assert response.headers["x-note"] == "kept"
    assert response.json()["data"]["viewer"]["email"] == admin.email
