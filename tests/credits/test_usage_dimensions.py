"""Dimensions and unstorable text through GraphQL: the same rules as /v1/usage."""

from __future__ import annotations

from tests.support.api import Actor, Api
from tests.support.billing import grant

RECORD = """mutation($i: RecordUsageInput!) { recordUsage(input: $i) {
  usage { idempotencyKey dimensions } errors { code field } } }"""
BATCH = """mutation($e: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $e}) {
  results { usage { idempotencyKey dimensions } errors { code field } } } }"""


async def test_dimensions_are_stored_returned_and_part_of_the_key(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    dims = {"model": "grok-4", "project": "search"}
    event = {"teamId": admin.team_id, "amount": "0.10", "idempotencyKey": "k", "dimensions": dims}
    data = await api.ok(RECORD, {"i": event}, operator.token)
    assert data["recordUsage"] == {
        "usage": {"idempotencyKey": "k", "dimensions": dims},
        "errors": [],
    }
    replay = await api.ok(
        RECORD, {"i": {**event, "dimensions": dict(reversed(dims.items()))}}, operator.token
    )
    assert replay["recordUsage"]["errors"] == []
    other = await api.ok(RECORD, {"i": {**event, "dimensions": {"model": "x"}}}, operator.token)
    assert other["recordUsage"]["errors"] == [
        {"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}
    ]
    none = await api.ok(RECORD, {"i": {**event, "dimensions": None}}, operator.token)
    assert none["recordUsage"]["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_bad_events_get_their_own_errors_in_a_batch(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")

    def event(key: str, **extra: object) -> dict[str, object]:
        return {"teamId": admin.team_id, "amount": "0.10", "idempotencyKey": key, **extra}

    events = [
        event("ok-1", dimensions={"model": "m"}),
        event("nul\x00"),
        event("d", description="\x00"),
        event("dims", dimensions=["not", "a", "map"]),
        event("deep", dimensions={"a": {"b": "c"}}),
        event("space", dimensions={"model name": "m"}),
        event("late", occurredAt="0001-01-01T00:00:00+01:00"),
        event("ok-2", dimensions={}),
        event("camel", dimensions={"apiKey": "key_7f3"}),  # the documented example's key
    ]
    data = await api.ok(BATCH, {"e": events}, operator.token)
    summary = [
        (r["usage"]["idempotencyKey"] if r["usage"] else None, [e["field"] for e in r["errors"]])
        for r in data["recordUsageBatch"]["results"]
    ]
    assert summary == [
        ("ok-1", []),
        (None, ["idempotencyKey"]),
        (None, ["description"]),
        (None, ["dimensions"]),
        (None, ["dimensions"]),
        (None, ["dimensions"]),
        (None, ["occurredAt"]),
        ("ok-2", []),
        ("camel", []),
    ]
    assert data["recordUsageBatch"]["results"][-2]["usage"]["dimensions"] is None
