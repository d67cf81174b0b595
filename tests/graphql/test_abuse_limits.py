"""Abuse limits: each is refused before execution and changes nothing.

Query cost (depth, tokens, aliases, fragment bombs, field floods, circular fragments),
page sizes, body size, batching, GET mutations, content types, CORS, production mode,
masked errors, request ids and /metrics.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import strawberry
from graphql import GraphQLObjectType, parse

from app.config import Environment, Settings
from app.credits.models import UsageRecord
from app.graphql import errors as graphql_errors
from app.graphql.limits import MAX_ALIASES, MAX_DEPTH, MAX_FIELDS, MAX_TOKENS, document_cost
from app.graphql.schema import schema
from app.kit.pagination import MAX_PAGE, decode_cursor, encode_cursor, page_size
from app.main import create_app
from app.teams.models import Team
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import grant
from tests.support.metrics import sample

USAGE = """mutation($t: ID!, $key: String!, $d: String) {
  recordUsage(input: {teamId: $t, amount: "0.01", idempotencyKey: $key, description: $d}) {
    usage { id } errors { code } } }"""


def _bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2^levels fields from a few hundred bytes."""
    frags = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    frags.append(f"fragment F{levels} on Query {{ viewer {{ id }} }}")
    return "query { ...F0 }\n" + "\n".join(frags)


async def _post(client: httpx.AsyncClient, query: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, **kw}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _usage_count() -> int:
    return await UsageRecord.all().count()


# --- query cost ---------------------------------------------------------------------------


async def test_fragment_bomb_is_refused_before_validation(
    client: httpx.AsyncClient, operator: Actor
) -> None:
    body = await _post(client, _bomb(40), operator.token)
    assert body.get("data") is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"QUERY_TOO_COMPLEX"}
    assert "fields once fragments are expanded" in body["errors"][0]["message"]
    # The measure is linear: 2^40 is computed, never walked.
    assert document_cost(parse(_bomb(40))).fields == 2**41


async def test_a_mutation_bomb_records_nothing(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    frags = [f"fragment M{i} on Mutation {{ ...M{i + 1} ...M{i + 1} }}" for i in range(12)]
    frags.append(
        f'fragment M12 on Mutation {{ recordUsage(input: {{teamId: "{admin.team_id}", '
        'amount: "0.01", idempotencyKey: "bomb"}) { usage { id } } }'
    )
    body = await _post(client, "mutation { ...M0 }\n" + "\n".join(frags), operator.token)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert await _usage_count() == 0


async def test_circular_fragments_are_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    query = """query { viewer { ...A } }
      fragment A on Viewer { id ...B }
      fragment B on Viewer { email ...A }"""
    body = await _post(client, query, admin.token)
    assert body.get("data") is None
    assert "Cannot spread fragment 'A' within itself via 'B'." in body["errors"][0]["message"]


async def test_too_many_aliases_are_refused_and_record_nothing(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    await grant(Api(client), operator, admin.team_id, "10.00")
    fields = " ".join(
        f'u{i}: recordUsage(input: {{teamId: "{admin.team_id}", amount: "0.01", '
        f'idempotencyKey: "a{i}"}}) {{ errors {{ code }} }}'
        for i in range(MAX_ALIASES + 1)
    )
    body = await _post(client, f"mutation {{ {fields} }}", operator.token)
    assert body.get("data") is None
    assert f"{MAX_ALIASES + 1} aliases found" in body["errors"][0]["message"]
    assert await _usage_count() == 0


async def test_aliases_hidden_in_a_fragment_count_at_every_spread(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    # 16 aliases written once, spread twice: 32 executed, over the limit of 30.
    aliases = " ".join(f"e{i}: email" for i in range(16))
    query = f"""query {{ a: viewer {{ ...V }} b: viewer {{ ...V }} }}
      fragment V on Viewer {{ {aliases} }}"""
    body = await _post(client, query, admin.token)
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "34 aliases found" in body["errors"][0]["message"]
    # Within the limit it runs.
    ok = await _post(client, query.replace(aliases, "e0: email e1: email"), admin.token)
    assert "errors" not in ok
    assert ok["data"]["a"]["e1"] == admin.email


async def test_a_field_flood_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    # 300 copies of one field: overlapping-field validation would compare every pair.
    body = await _post(client, "{ " + "viewer { id } " * 300 + "}", admin.token)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    nested = "{ " + ("viewer { " + "memberships { role } " * 5 + "} ") * 5 + "}"
    body = await _post(client, nested, admin.token)
    assert "repeats one field 25 times" in body["errors"][0]["message"]


async def test_too_many_fields_are_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    aliases = " ".join(f"e{i}: email" for i in range(20))
    frags = " ".join(f"f{i}: viewer {{ ...V }}" for i in range(MAX_FIELDS // 20))
    body = await _post(
        client, f"query {{ {frags} }} fragment V on Viewer {{ {aliases} }}", admin.token
    )
    messages = " ".join(e["message"] for e in body["errors"])
    assert f"(at most {MAX_FIELDS})" in messages


async def test_too_many_tokens_are_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    body = await _post(client, "{ viewer { " + "id " * MAX_TOKENS + "} }", admin.token)
    assert body.get("data") is None
    assert f"more than {MAX_TOKENS} tokens" in body["errors"][0]["message"]


async def test_deep_introspection_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    deep = "{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }"
    body = await _post(client, deep, admin.token)
    assert body.get("data") is None
    assert body["errors"][0]["message"] == "Maximum introspection depth exceeded"
    chain = "ofType { " * 25 + "name" + " }" * 25
    body = await _post(client, f'{{ __type(name: "Team") {{ {chain} }} }}', admin.token)
    assert "levels deep" in body["errors"][0]["message"]


@strawberry.type
class Node:
    name: str = "n"

    @strawberry.field
    def child(self) -> Node:
        return Node()


@strawberry.type
class RecursiveQuery:
    @strawberry.field
    def node(self) -> Node:
        return Node()


def test_the_depth_limiter_and_its_fragments() -> None:
    """Our schema has no cycle deeper than the limit, so a recursive one checks the rule."""
    recursive = strawberry.Schema(query=RecursiveQuery, extensions=schema.extensions)

    def nested(depth: int) -> str:
        return "{ node { " + "child { " * (depth - 1) + "name" + " }" * depth + " }"

    assert recursive.execute_sync(nested(MAX_DEPTH)).errors is None
    result = recursive.execute_sync(nested(MAX_DEPTH + 1))
    assert result.errors is not None
    assert "exceeds maximum operation depth" in result.errors[0].message
    # Depth hidden in fragments is counted through them.
    fragments = "{ node { ...A } } fragment A on Node { child { ...B } } " + (
        "fragment B on Node { child { "
        + "child { " * MAX_DEPTH
        + "name"
        + " }" * MAX_DEPTH
        + " } }"
    )
    result = recursive.execute_sync(fragments)
    assert result.errors is not None
    assert "exceeds maximum operation depth" in result.errors[0].message


# --- pages --------------------------------------------------------------------------------


def _paginated_team_fields() -> list[str]:
    team = schema._schema.get_type("Team")
    assert isinstance(team, GraphQLObjectType)
    return sorted(name for name, field in team.fields.items() if "first" in field.args)


async def test_every_page_size_is_capped_at_100(api: Api, admin: Actor) -> None:
    fields = _paginated_team_fields()
    assert {"purchases", "invoices", "auditLog"} <= set(fields)
    for name in fields:
        query = (
            f"query($t: ID!, $n: Int) {{ team(id: $t) {{ {name}(first: $n) {{ __typename }} }} }}"
        )
        code = await api.error_code(query, {"t": admin.team_id, "n": MAX_PAGE + 1}, admin.token)
        assert code == "INVALID_INPUT", name
        code = await api.error_code(query, {"t": admin.team_id, "n": -1}, admin.token)
        assert code == "INVALID_INPUT", name
        await api.ok(query, {"t": admin.team_id, "n": MAX_PAGE}, admin.token)


def test_page_size_and_cursors() -> None:
    assert page_size(None) == 20
    assert page_size(100) == 100
    for bad in (101, -1, 10**9):
        with pytest.raises(Exception, match="first takes 0 to 100"):
            page_size(bad)
    cursor = encode_cursor("2026-01-01T00:00:00+00:00", 42)
    assert decode_cursor(cursor, 2) == ["2026-01-01T00:00:00+00:00", "42"]
    for bad in ("", "!!!", encode_cursor("a"), "x" * 600):
        with pytest.raises(Exception, match="Not a cursor"):
            decode_cursor(bad, 2)


# --- HTTP ---------------------------------------------------------------------------------


async def test_a_body_over_1_mb_is_refused_with_413(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    await grant(Api(client), operator, admin.team_id, "10.00")
    payload = {
        "query": USAGE,
        "variables": {"t": admin.team_id, "key": "big", "d": "x" * 1_100_000},
    }
    headers = {"Authorization": f"Bearer {operator.token}"}
    response = await client.post("/graphql", json=payload, headers=headers)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:
        data = json.dumps(payload).encode()
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    # Chunked (no Content-Length): cut off once the bytes read pass the cap.
    response = await client.post(
        "/graphql", content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert await _usage_count() == 0


async def test_batched_operations_are_refused(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    await grant(Api(client), operator, admin.team_id, "10.00")
    batch = [{"query": USAGE, "variables": {"t": admin.team_id, "key": f"b{i}"}} for i in range(2)]
    response = await client.post(
        "/graphql", json=batch, headers={"Authorization": f"Bearer {operator.token}"}
    )
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text
    assert await _usage_count() == 0


async def test_get_never_runs_a_mutation(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    await grant(Api(client), operator, admin.team_id, "10.00")
    response = await client.get(
        "/graphql",
        params={"query": USAGE, "variables": json.dumps({"t": admin.team_id, "key": "get"})},
        headers={"Authorization": f"Bearer {operator.token}"},
    )
    assert response.status_code in (400, 405)
    assert "mutations are not allowed when using get" in response.text.lower()
    assert await _usage_count() == 0
    # Queries over GET still work (the IDE's links, curl).
    response = await client.get(
        "/graphql",
        params={"query": "{ viewer { email } }"},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.json()["data"]["viewer"]["email"] == admin.email


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,
    ],
)
async def test_only_json_posts_reach_graphql(
    client: httpx.AsyncClient, operator: Actor, admin: Actor, content_type: str | None
) -> None:
    """A cross-site form (text/plain, urlencoded, multipart) cannot run a mutation."""
    await grant(Api(client), operator, admin.team_id, "10.00")
    body = json.dumps({"query": USAGE, "variables": {"t": admin.team_id, "key": "form"}})
    headers = {"Authorization": f"Bearer {operator.token}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post("/graphql", content=body.encode(), headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await _usage_count() == 0
    response = await client.post(
        "/graphql",
        content=body.encode(),
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.json()["data"]["recordUsage"]["errors"] == []


@pytest.fixture
async def app_with(database: Settings) -> AsyncIterator[Any]:
    """Makes a client for an app with some settings changed."""
    clients: list[httpx.AsyncClient] = []

    async def make(**changes: Any) -> httpx.AsyncClient:
        app = create_app(database.model_copy(update=changes), manage_db=False)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


async def test_cors_allows_only_listed_origins(app_with: Any) -> None:
    client = await app_with(cors_allow_origins=["https://console.example.com"])
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await client.options(
        "/graphql", headers={"Origin": "https://console.example.com", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    denied = await client.options(
        "/graphql", headers={"Origin": "https://evil.example", **preflight}
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    simple = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in simple.headers


async def test_production_has_no_introspection_and_no_ide(app_with: Any) -> None:
    client = await app_with(environment=Environment.PRODUCTION)
    body = (await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})).json()
    assert body.get("data") is None
    assert "introspection" in body["errors"][0]["message"].lower()
    body = (
        await client.post("/graphql", json={"query": '{ __type(name: "Team") { name } }'})
    ).json()
    assert "introspection" in body["errors"][0]["message"].lower()
    ide = await client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 404
    # __typename is not introspection: clients (Apollo) add it everywhere.
    body = (await client.post("/graphql", json={"query": "{ __typename }"})).json()
    assert body == {"data": {"__typename": "Query"}}
    # Development keeps both.
    dev = await app_with(environment=Environment.DEVELOPMENT)
    body = (await dev.post("/graphql", json={"query": "{ __schema { types { name } } }"})).json()
    assert "errors" not in body
    # 200 once the console is built (503 says "not built yet"): the IDE route is there.
    assert (await dev.get("/graphql", headers={"Accept": "text/html"})).status_code in (200, 503)


async def test_unexpected_errors_are_masked_with_an_id_in_the_log(
    client: httpx.AsyncClient, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import structlog

    from app.teams import service as teams

    logged: list[dict[str, Any]] = []

    class Log:
        def error(self, event: str, **fields: Any) -> None:
            logged.append({"event": event, **fields, **structlog.contextvars.get_contextvars()})

    async def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("password=hunter2 in a connection string")

    monkeypatch.setattr(graphql_errors, "log", Log())
    monkeypatch.setattr(teams, "memberships", boom)
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { memberships { role } } }"},
        headers={"Authorization": f"Bearer {admin.token}", "X-Request-ID": "req-abc-123"},
    )
    body = response.json()
    (error,) = body["errors"]
    assert error["message"] == "Internal error."
    assert error["extensions"]["code"] == "INTERNAL"
    assert "hunter2" not in response.text
    (entry,) = logged
    assert entry["event"] == "graphql.unexpected_error"
    assert entry["error_id"] == error["extensions"]["errorId"]
    assert entry["request_id"] == "req-abc-123"
    assert response.headers["x-request-id"] == "req-abc-123"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # A client's id is kept when sane, replaced when not (log injection, huge values).
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc.1"})).headers[
        "x-request-id"
    ] == "abc.1"
    bad = await client.get("/healthz", headers={"X-Request-ID": "a b\tc" + "x" * 100})
    assert len(bad.headers["x-request-id"]) == 32


async def test_metrics_count_operations_and_usage_outcomes(
    client: httpx.AsyncClient, operator: Actor, admin: Actor
) -> None:
    api = Api(client)
    before = (await client.get("/metrics")).text
    await grant(api, operator, admin.team_id, "0.02")
    for key in ("m1", "m2", "m3"):
        await api.ok(USAGE, {"t": admin.team_id, "key": key}, operator.token)
    named = "query Balance($t: ID!) { team(id: $t) { credits { total } } }"
    await api.ok(named, {"t": admin.team_id}, admin.token)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, labels: dict[str, str]) -> float:
        return sample(after, name, labels) - sample(before, name, labels)

    usage = "creditline_usage_events_total"
    assert delta(usage, {"outcome": "accepted", "reason": ""}) == 2
    assert delta(usage, {"outcome": "rejected", "reason": "CREDITS_EXHAUSTED"}) == 1
    requests = "creditline_graphql_requests_total"
    labels = {"operation": "recordUsage", "type": "mutation", "outcome": "ok"}
    assert delta(requests, labels) == 3
    assert delta(requests, {"operation": "Balance", "type": "query", "outcome": "ok"}) == 1
    latency = "creditline_graphql_request_seconds_count"
    assert delta(latency, {"operation": "recordUsage", "type": "mutation"}) == 3
    assert "creditline_subscriptions" in after
    assert "creditline_webhook_events_total" in after


def test_operation_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import metrics

    monkeypatch.setattr(metrics, "_operation_names", set())
    for i in range(metrics.MAX_OPERATION_NAMES + 20):
        metrics.operation_label(f"Op{i}x{uuid.uuid4().hex[:6]}", None)
    assert metrics.operation_label("NeverSeenBefore", None) == "other"
    assert metrics.operation_label("bad name; drop", None) == "other"


async def test_healthz_stays_cheap_and_unguarded(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}
    assert await Team.all().count() == 0


async def test_sign_up_helper_still_works_through_the_guard(api: Api) -> None:
    actor = await sign_up(api)
    assert uuid.UUID(actor.team_id)
