"""POST /v1/usage and /v1/usage/batch: answers, status codes, dimensions, each event alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.billing.ledger_audit import audit
from app.credits import store
from app.credits.models import ClosedPeriod, LedgerEntry, UsageRecord
from app.kit import clock
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import credits, grant, set_limit
from tests.support.ingest import code, event, post
from tests.support.keys import REVOKE_SERVICE_KEY, service_key, team_key

USAGE, BATCH = "/v1/usage", "/v1/usage/batch"
# What one client may send that no database stores, each in a field of its own.
POISONED = [
    {"idempotencyKey": "nul\x00key"},
    {"description": "lone \ud800 surrogate"},
    {"description": "x" * 501},
    {"amount": "99999999999999999999999"},
    {"occurredAt": "0001-01-01T00:00:00+01:00"},
    {"teamId": "not-a-uuid\x00"},
    {"dimensions": {"Bad Key": "v"}},
    {"dimensions": {"model": "\x00"}},
    {"dimensions": {f"k{i}": "v" for i in range(11)}},
]


async def test_one_event_answers_its_usage_record(
    client: httpx.AsyncClient, admin: Actor, operator: Actor, api: Api
) -> None:
    await grant(api, operator, admin.team_id, "1.00", "FREE")
    await grant(api, operator, admin.team_id, "2.00", "PREPAID")
    dims = {"model": "grok-4", "api_key": "key_7f3", "project": "search"}
    body = event(admin.team_id, "1.50", "req-1", description="chat", dimensions=dims)
    status, answer = await post(client, USAGE, body, operator.token)
    assert status == 200, answer
    usage = answer["usage"]
    assert usage["teamId"] == admin.team_id
    assert (usage["amount"], usage["fromFree"], usage["fromPrepaid"]) == ("1.50", "1.00", "0.50")
    assert (usage["fromPromotional"], usage["invoiced"], usage["accepted"]) == (
        "0.00",
        "0.00",
        True,
    )
    assert (usage["idempotencyKey"], usage["description"]) == ("req-1", "chat")
    assert usage["dimensions"] == dims
    assert datetime.fromisoformat(usage["occurredAt"]).tzinfo is not None
    # A replay answers the first record; other dimensions are other parameters.
    assert (await post(client, USAGE, body, operator.token)) == (200, answer)
    other = {**body, "dimensions": {**dims, "model": "grok-3"}}
    status, refused = await post(client, USAGE, other, operator.token)
    assert (status, code(refused)) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert refused["error"]["field"] == "idempotencyKey"
    assert (await credits(api, admin))["total"] == "1.50"
    # GraphQL reads the same dimensions back.
    stored = await UsageRecord.get(idempotency_key="req-1")
    assert stored.dimensions == dims


async def test_who_may_call(client: httpx.AsyncClient, admin: Actor, operator: Actor) -> None:
    body = event(admin.team_id, "1.00", "k")
    status, answer = await post(client, USAGE, body, None)
    assert (status, code(answer)) == (401, "UNAUTHENTICATED")
    status, answer = await post(client, BATCH, {"events": [body]}, "not-a-jwt")
    assert (status, code(answer)) == (401, "UNAUTHENTICATED")
    status, answer = await post(client, USAGE, body, admin.token)
    assert (status, code(answer)) == (403, "FORBIDDEN")
    status, answer = await post(client, BATCH, {"events": [body]}, admin.token)
    assert (status, code(answer)) == (403, "FORBIDDEN")
    assert await UsageRecord.all().count() == 0


async def test_keys_on_v1(
    client: httpx.AsyncClient, api: Api, admin: Actor, operator: Actor
) -> None:
    """A usage:write service key records usage for any team; a usage:read key, a team's
    own key and a revoked key do not."""
    await grant(api, operator, admin.team_id, "5.00")
    writer, writer_secret = await service_key(api, operator.token, ["usage:write"])
    _, reader_secret = await service_key(api, operator.token, ["usage:read"])
    _, team_secret = await team_key(api, admin.token, admin.team_id, ["BILLING_WRITE"])
    status, answer = await post(client, USAGE, event(admin.team_id, "1.00", "w"), writer_secret)
    assert (status, answer["usage"]["amount"]) == (200, "1.00")
    for secret in (reader_secret, team_secret):
        status, answer = await post(client, USAGE, event(admin.team_id, "1.00", "x"), secret)
        assert (status, code(answer)) == (403, "FORBIDDEN")
    hold = {"teamId": admin.team_id, "amount": "1.00", "idempotencyKey": "h"}
    status, answer = await post(client, "/v1/holds", hold, writer_secret)
    assert status == 201, answer
    await api.ok(REVOKE_SERVICE_KEY, {"id": writer["id"]}, operator.token)
    status, answer = await post(client, USAGE, event(admin.team_id, "1.00", "y"), writer_secret)
    assert (status, code(answer)) == (401, "UNAUTHENTICATED")
    assert await UsageRecord.all().count() == 1


@pytest.mark.parametrize(
    ("change", "status", "error", "field"),
    [
        ({"amount": "abc"}, 400, "INVALID_AMOUNT", "amount"),
        ({"amount": 1.5}, 400, "INVALID_AMOUNT", "amount"),
        ({"amount": "0"}, 400, "INVALID_AMOUNT", "amount"),
        ({"amount": "1e30"}, 400, "INVALID_AMOUNT", "amount"),
        ({"idempotencyKey": None}, 400, "INVALID_INPUT", "idempotencyKey"),
        ({"idempotencyKey": "k" * 256}, 400, "INVALID_INPUT", "idempotencyKey"),
        ({"idempotencyKey": "nul\x00"}, 400, "INVALID_INPUT", "idempotencyKey"),
        ({"description": "\udc00"}, 400, "INVALID_INPUT", "description"),
        ({"occurredAt": "2026-03-01T00:00:00"}, 400, "INVALID_INPUT", "occurredAt"),
        ({"occurredAt": "9999-12-31T23:00:00-05:00"}, 400, "INVALID_INPUT", "occurredAt"),
        ({"occurredAt": "2099-01-01T00:00:00Z"}, 400, "INVALID_INPUT", "occurredAt"),
        ({"dimensions": {"model": {"nested": "x"}}}, 400, "INVALID_INPUT", "dimensions"),
        ({"dimensions": {"k" * 65: "v"}}, 400, "INVALID_INPUT", "dimensions"),
        ({"dimensions": {"model": "v" * 257}}, 400, "INVALID_INPUT", "dimensions"),
        ({"dimensions": {"model": "\ud800"}}, 400, "INVALID_INPUT", "dimensions"),
        ({"extra": 1}, 400, "INVALID_INPUT", "extra"),
        ({"teamId": "not-a-team"}, 404, "NOT_FOUND", "teamId"),
        ({"teamId": str(uuid.uuid4())}, 404, "NOT_FOUND", "teamId"),
        ({}, 402, "CREDITS_EXHAUSTED", "amount"),
    ],
)
async def test_each_refusal_has_its_status(
    client: httpx.AsyncClient,
    admin: Actor,
    operator: Actor,
    change: dict[str, Any],
    status: int,
    error: str,
    field: str | None,
) -> None:
    body = {**event(admin.team_id, "1.00", "k"), **change}
    body = {name: value for name, value in body.items() if value is not None}
    answer_status, answer = await post(client, USAGE, body, operator.token)
    assert (answer_status, code(answer), answer["error"]["field"]) == (status, error, field)
    assert answer["error"]["message"]
    # The same event in a batch gets the same error, as its own result.
    batch_status, batch = await post(client, BATCH, {"events": [body]}, operator.token)
    assert batch_status == 200
    assert batch["results"] == [answer]
    assert await UsageRecord.all().count() == 0


async def test_invoiced_limit_and_closed_period(
    client: httpx.AsyncClient, admin: Actor, operator: Actor, api: Api
) -> None:
    clock.freeze(datetime(2026, 3, 10, 12, tzinfo=UTC))
    await set_limit(admin.team_id, "1.00")
    status, answer = await post(client, USAGE, event(admin.team_id, "0.75", "a"), operator.token)
    assert (status, answer["usage"]["invoiced"]) == (200, "0.75")
    status, answer = await post(client, USAGE, event(admin.team_id, "0.50", "b"), operator.token)
    assert (status, code(answer)) == (402, "INVOICED_LIMIT_REACHED")
    await ClosedPeriod.create(period="2026-02", closed_at=clock.now())
    late = event(admin.team_id, "0.10", "c", occurredAt="2026-02-27T10:00:00Z")
    status, answer = await post(client, USAGE, late, operator.token)
    assert (status, code(answer), answer["error"]["field"]) == (409, "PERIOD_CLOSED", "occurredAt")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b'{"events": {}}',
        b'{"events": []}',
        b'{"events": [{}], "more": 1}',
        b'{"events": [{"teamId": "\\ud800"}], "more": 1}',
        b'{"event": []}',
    ],
)
async def test_a_batch_that_is_not_one_is_refused_whole(
    client: httpx.AsyncClient, operator: Actor, body: bytes
) -> None:
    status, answer = await post(client, BATCH, body, operator.token)
    assert (status, code(answer)) == (400, "INVALID_INPUT")


async def test_a_batch_takes_at_most_1000_events(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    events = [event(admin.team_id, "0.01", f"k{i}") for i in range(1001)]
    status, answer = await post(client, BATCH, {"events": events}, operator.token)
    assert (status, code(answer), answer["error"]["field"]) == (400, "INVALID_INPUT", "events")


async def test_poisoned_events_of_one_team_leave_another_teams_events_alone(
    client: httpx.AsyncClient, admin: Actor, operator: Actor, api: Api
) -> None:
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "10.00")
    await grant(api, operator, other.team_id, "10.00")
    events: list[Any] = []
    for number, poison in enumerate(POISONED):
        events.append(event(admin.team_id, "0.10", f"a-{number}", dimensions={"model": "m"}))
        events.append({**event(other.team_id, "0.10", f"b-{number}"), **poison})
    events.append(42)  # not even an object: its own error too
    status, answer = await post(client, BATCH, {"events": events}, operator.token)
    assert status == 200
    results = answer["results"]
    assert len(results) == len(events)
    valid, poisoned, last = results[0:-1:2], results[1:-1:2], results[-1]
    assert [r["usage"]["idempotencyKey"] for r in valid] == [f"a-{n}" for n in range(len(POISONED))]
    assert all("usage" not in r and r["error"]["code"] for r in poisoned), poisoned
    assert code(last) == "INVALID_INPUT"
    assert (await credits(api, other))["total"] == "10.00"
    assert (await credits(api, admin))["total"] == f"{10 - 0.1 * len(POISONED):.2f}"


async def test_concurrent_events_beside_poisoned_ones_all_succeed(
    client: httpx.AsyncClient, admin: Actor, operator: Actor, api: Api
) -> None:
    """Concurrent requests share the worker's group commit: the poisoned ones must be
    refused before they reach it."""
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "3.00")
    await grant(api, operator, other.team_id, "3.00")
    valid = [event(admin.team_id, "0.10", f"v-{i}") for i in range(30)]
    poisoned = [{**event(other.team_id, "0.10", f"p-{i}"), **POISONED[i]} for i in range(5)]
    answers = await asyncio.gather(
        *(post(client, USAGE, body, operator.token) for body in [*valid, *poisoned])
    )
    assert [status for status, _ in answers[:30]] == [200] * 30
    assert {status for status, _ in answers[30:]} <= {400, 404}
    assert (await credits(api, admin))["total"] == "0.00"
    assert (await credits(api, other))["total"] == "3.00"


def _failing_for(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes the database write of any transaction holding `key`'s record fail."""
    write = store.write_changes

    async def failing(conn: Any, usage: Any, *args: Any) -> None:
        if any(record.idempotency_key == key for record in usage):
            raise RuntimeError("the database refused this row")
        await write(conn, usage, *args)

    monkeypatch.setattr(store, "write_changes", failing)


async def test_a_database_failure_fails_only_its_own_event(
    client: httpx.AsyncClient,
    admin: Actor,
    operator: Actor,
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "10.00")
    await grant(api, operator, other.team_id, "10.00")
    _failing_for("doomed", monkeypatch)
    events = [event(admin.team_id, "0.25", f"a-{i}") for i in range(6)]
    events.insert(3, event(other.team_id, "0.50", "doomed"))
    events += [event(other.team_id, "0.50", "b-0"), event(admin.team_id, "0.25", "a-0")]
    status, answer = await post(client, BATCH, {"events": events}, operator.token)
    assert status == 200
    results = answer["results"]
    assert code(results[3]) == "INTERNAL"
    keys = [r["usage"]["idempotencyKey"] for i, r in enumerate(results) if i != 3]
    assert keys == ["a-0", "a-1", "a-2", "a-3", "a-4", "a-5", "b-0", "a-0"]
    assert results[-1] == results[0]  # the replay answers the first record
    # Single requests that share the group commit with it: only it fails.
    singles = [event(admin.team_id, "0.25", f"s-{i}") for i in range(5)]
    answers = await asyncio.gather(
        *(post(client, USAGE, body, operator.token) for body in [*singles, events[3]])
    )
    assert [status for status, _ in answers] == [200] * 5 + [500]
    assert code(answers[-1][1]) == "INTERNAL"
    # Each stored once, nothing of the failed one, the ledger exact.
    records = await UsageRecord.all().values_list("idempotency_key", flat=True)
    assert sorted(records) == sorted(
        [f"a-{i}" for i in range(6)] + ["b-0"] + [f"s-{i}" for i in range(5)]
    )
    draws = await LedgerEntry.filter(usage_id__isnull=False).count()
    assert draws == 12
    assert (await credits(api, admin))["total"] == "7.25"
    assert (await credits(api, other))["total"] == "9.50"
    assert await audit() == []
