"""`/v1/holds` as the metering gateway sees it: statuses, JSON bodies, refusals."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from app.billing.ledger_audit import audit
from app.credits.models import Hold, HoldStatus
from tests.support.api import Actor
from tests.support.credits import give
from tests.support.holds import post


def create_body(
    actor: Actor, amount: str = "1.00", key: str = "k-1", **extra: Any
) -> dict[str, Any]:
    return {"teamId": actor.team_id, "amount": amount, "idempotencyKey": key, **extra}


async def created(
    client: httpx.AsyncClient, operator: Actor, body: dict[str, Any]
) -> dict[str, Any]:
    status, answer = await post(client, "/v1/holds", operator.token, body)
    assert status == 201, answer
    hold: dict[str, Any] = answer["hold"]
    return hold


async def assert_audit_clean() -> None:
    assert [str(d) for d in await audit()] == []


async def test_60_concurrent_holds_on_20_dollars(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await give(uuid.UUID(admin.team_id), "20.00")
    answers = await asyncio.gather(
        *(
            post(client, "/v1/holds", operator.token, create_body(admin, key=f"h-{i}"))
            for i in range(60)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * 20 + [402] * 40
    refusals = {a["error"]["code"] for s, a in answers if s == 402}
    assert refusals == {"CREDITS_EXHAUSTED"}
    status, usage = await post(client, "/v1/holds", operator.token, create_body(admin, "0.01", "x"))
    assert status == 402
    assert usage["error"] == {
        "code": "CREDITS_EXHAUSTED",
        "message": "Not enough credits for this usage.",
        "field": "amount",
    }
    await assert_audit_clean()


async def test_create_capture_and_release(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await give(uuid.UUID(admin.team_id), "20.00")
    body = create_body(admin, "5.00", "stream-1", description="chat", dimensions={"model": "m1"})
    hold = await created(client, operator, body)
    assert hold | {"id": "", "expiresAt": "", "createdAt": "", "updatedAt": ""} == {
        "id": "",
        "teamId": admin.team_id,
        "amount": "5.00",
        "captured": "0.00",
        "status": "HELD",
        "description": "chat",
        "dimensions": {"model": "m1"},
        "expiresAt": "",
        "createdAt": "",
        "updatedAt": "",
    }
    assert await created(client, operator, body) == hold  # a replay answers the same hold
    status, reused = await post(client, "/v1/holds", operator.token, body | {"amount": "5.01"})
    assert (status, reused["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")

    path = f"/v1/holds/{hold['id']}"
    status, too_much = await post(client, f"{path}/capture", operator.token, {"amount": "5.01"})
    assert (status, too_much["error"]["code"], too_much["error"]["field"]) == (
        400,
        "INVALID_AMOUNT",
        "amount",
    )
    status, capture = await post(client, f"{path}/capture", operator.token, {"amount": "3.50"})
    assert status == 200, capture
    assert capture["hold"]["status"] == "CAPTURED"
    assert capture["hold"]["captured"] == "3.50"
    usage = capture["usage"]
    assert usage | {"id": "", "occurredAt": ""} == {
        "id": "",
        "idempotencyKey": f"hold:{hold['id']}",
        "amount": "3.50",
        "accepted": True,
        "fromFree": "3.50",
        "fromPromotional": "0.00",
        "fromPrepaid": "0.00",
        "invoiced": "0.00",
        "description": "chat",
        "occurredAt": "",
        "teamId": admin.team_id,
        "dimensions": {"model": "m1"},  # the hold's, carried to its usage record
    }
    status, again = await post(client, f"{path}/capture", operator.token, {"amount": "3.50"})
    assert (status, again) == (200, capture)
    status, closed = await post(client, f"{path}/release", operator.token)
    assert (status, closed["error"]["code"]) == (409, "HOLD_CLOSED")

    other = await created(client, operator, create_body(admin, "2.00", "stream-2"))
    status, released = await post(client, f"/v1/holds/{other['id']}/release", operator.token)
    assert (status, released["hold"]["status"]) == (200, "RELEASED")
    status, closed = await post(
        client, f"/v1/holds/{other['id']}/capture", operator.token, {"amount": "1.00"}
    )
    assert (status, closed["error"]["code"]) == (409, "HOLD_CLOSED")
    await assert_audit_clean()


async def test_unknown_or_other_teams_holds_are_not_found(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await give(uuid.UUID(admin.team_id), "20.00")
    hold = await created(client, operator, create_body(admin, "5.00"))
    other_team = {"teamId": operator.team_id}
    for path, body in (
        (f"/v1/holds/{hold['id']}/capture", {"amount": "1.00", **other_team}),
        (f"/v1/holds/{hold['id']}/release", other_team),
        (f"/v1/holds/{uuid.uuid4()}/release", None),
        ("/v1/holds/not-a-hold/capture", {"amount": "1.00"}),
    ):
        status, answer = await post(client, path, operator.token, body)
        assert (status, answer["error"]["code"]) == (404, "NOT_FOUND"), path
    status, answer = await post(
        client, "/v1/holds", operator.token, create_body(admin) | {"teamId": str(uuid.uuid4())}
    )
    assert (status, answer["error"]) == (
        404,
        {"code": "NOT_FOUND", "message": "No such team.", "field": "teamId"},
    )
    assert (await Hold.get(id=hold["id"])).status is HoldStatus.HELD
    # The hold's own team may name itself.
    status, answer = await post(
        client, f"/v1/holds/{hold['id']}/release", operator.token, {"teamId": admin.team_id}
    )
    assert (status, answer["hold"]["status"]) == (200, "RELEASED")


async def test_only_operators_may_call(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await give(uuid.UUID(admin.team_id), "20.00")
    status, answer = await post(client, "/v1/holds", None, create_body(admin))
    assert (status, answer["error"]["code"]) == (401, "UNAUTHENTICATED")
    status, answer = await post(client, "/v1/holds", "not-a-jwt", create_body(admin))
    assert (status, answer["error"]["code"]) == (401, "UNAUTHENTICATED")
    status, answer = await post(client, "/v1/holds", admin.token, create_body(admin))
    assert (status, answer["error"]["code"]) == (403, "FORBIDDEN")
    hold = await created(client, operator, create_body(admin))
    status, answer = await post(client, f"/v1/holds/{hold['id']}/release", admin.token)
    assert (status, answer["error"]["code"]) == (403, "FORBIDDEN")
    assert await Hold.all().count() == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "INVALID_INPUT", None),
        (b"\xff\xfe\x00", "INVALID_INPUT", None),
        (b"[" * 100_000, "INVALID_INPUT", None),
        (b"[]", "INVALID_INPUT", None),
        ({"amount": 1}, "INVALID_AMOUNT", "amount"),
        ({"amount": 1.5}, "INVALID_AMOUNT", "amount"),
        ({"amount": "-1.00"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "0"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "1e400"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "0.000000001"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "99999999999999999999"}, "INVALID_AMOUNT", "amount"),
        ({"idempotencyKey": 7}, "INVALID_INPUT", "idempotencyKey"),
        ({"idempotencyKey": ""}, "INVALID_INPUT", "idempotencyKey"),
        ({"idempotencyKey": "k" * 256}, "INVALID_INPUT", "idempotencyKey"),
        ({"idempotencyKey": "nul\u0000"}, "INVALID_INPUT", "idempotencyKey"),
        ({"idempotencyKey": "\ud800"}, "INVALID_INPUT", "idempotencyKey"),
        ({"teamId": 12}, "INVALID_INPUT", "teamId"),
        ({"expiresInSeconds": 0}, "INVALID_INPUT", "expiresInSeconds"),
        ({"expiresInSeconds": 86_401}, "INVALID_INPUT", "expiresInSeconds"),
        ({"expiresInSeconds": "600"}, "INVALID_INPUT", "expiresInSeconds"),
        ({"expiresInSeconds": 600.0}, "INVALID_INPUT", "expiresInSeconds"),
        ({"expiresInSeconds": True}, "INVALID_INPUT", "expiresInSeconds"),
        ({"expiresInSeconds": 10**5000}, "INVALID_INPUT", None),
        ({"description": "x" * 501}, "INVALID_INPUT", "description"),
        ({"description": ["x"]}, "INVALID_INPUT", "description"),
        ({"description": "\u0000"}, "INVALID_INPUT", "description"),
        ({"dimensions": "model"}, "INVALID_INPUT", "dimensions"),
        ({"dimensions": {"a b": "x"}}, "INVALID_INPUT", "dimensions"),
        ({"dimensions": {"model": {"nested": "x"}}}, "INVALID_INPUT", "dimensions"),
        ({"dimensions": {str(i): "x" for i in range(11)}}, "INVALID_INPUT", "dimensions"),
        ({"expiresIn": 60}, "INVALID_INPUT", "expiresIn"),
        ({"\ud800": 60}, "INVALID_INPUT", None),
    ],
)
async def test_bad_input_is_a_clear_400_and_stores_nothing(
    client: httpx.AsyncClient,
    admin: Actor,
    operator: Actor,
    body: dict[str, Any] | bytes,
    code: str,
    field: str | None,
) -> None:
    await give(uuid.UUID(admin.team_id), "20.00")
    if isinstance(body, dict):
        if any(isinstance(v, int) and v > 10**100 for v in body.values()):
            # A number too long for Python's int parsing, sent as its raw digits.
            body = b'{"expiresInSeconds": ' + b"9" * 5000 + b"}"
        else:
            body = create_body(admin) | body
    status, answer = await post(client, "/v1/holds", operator.token, body)
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["field"]) == (code, field)
    assert answer["error"]["message"]
    assert await Hold.all().count() == 0


async def test_capture_input_is_checked(
    client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await give(uuid.UUID(admin.team_id), "20.00")
    hold = await created(client, operator, create_body(admin, "5.00"))
    path = f"/v1/holds/{hold['id']}/capture"
    for body, code, field in (
        ({"amount": "0"}, "INVALID_AMOUNT", "amount"),
        ({}, "INVALID_AMOUNT", "amount"),
        ({"amount": "1.00", "description": "\u0000"}, "INVALID_INPUT", "description"),
        ({"amount": "1.00", "dimensions": [1]}, "INVALID_INPUT", "dimensions"),
        ({"amount": "1.00", "idempotencyKey": "x"}, "INVALID_INPUT", "idempotencyKey"),
    ):
        status, answer = await post(client, path, operator.token, body)
        assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, code, field)
    assert (await Hold.get(id=hold["id"])).status is HoldStatus.HELD
    await assert_audit_clean()
