"""Outgoing webhooks against a real HTTP receiver on loopback: signatures, at-least-once
delivery after failures, ordering ids, team.blocked/unblocked, the log and replays."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

from app.config import Settings
from app.credits import service as credits_service
from app.kit import clock
from app.notifications import settings as notification_settings
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import grant, set_limit
from tests.support.credits import give, units, use
from tests.support.holds import hold
from tests.support.notifications import (
    DELETE_ENDPOINT,
    DELIVERIES,
    ENDPOINTS,
    REPLAY,
    Received,
    create_endpoint,
    drain,
    notifier,
    receiver,
)


def documented_check(secret: str, received: Received) -> bool:
    """What a receiver does with `Creditline-Signature: t=UNIX,v1=HEX` (not our code)."""
    header = received.headers["Creditline-Signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = f"{parts['t']}.".encode() + received.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return abs(time.time() - int(parts["t"])) < 300 and hmac.compare_digest(expected, parts["v1"])


def bodies(requests: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in requests]


async def blocked_then_unblocked(api: Api, operator: Actor, actor: Actor) -> None:
    """A team with no credits and no limit is refused (blocked), then given credits."""
    assert not await use(uuid.UUID(actor.team_id), "1.00")
    await grant(api, operator, actor.team_id, "5.00")


async def test_signatures_verify_with_the_documented_scheme(
    api: Api, operator: Actor, admin: Actor, settings: Settings
) -> None:
    async with receiver() as hooks:
        created = await create_endpoint(
            api, operator, hooks.url, ["team.blocked", "team.unblocked"]
        )
        assert created["errors"] == [], created
        secret = created["secret"]
        assert secret.startswith("whsec_")
        running = notifier(settings, None)
        await blocked_then_unblocked(api, operator, admin)
        await drain(running)
        assert len(hooks.requests) == 2
        for request in hooks.requests:
            assert documented_check(secret, request)
            assert not documented_check("whsec_other", request)
            tampered = Received(request.headers, request.body.replace(b"team", b"mate"), 200)
            assert not documented_check(secret, tampered)
        first, second = bodies(hooks.requests)
        assert [first["type"], second["type"]] == ["team.blocked", "team.unblocked"]
        assert set(first) >= {"id", "type", "createdAt", "data"}
        assert first["data"] == {"teamId": admin.team_id, "status": "CREDITS_EXHAUSTED"}
        assert second["data"] == {"teamId": admin.team_id, "status": "ACTIVE"}
        assert hooks.requests[0].headers["Creditline-Event-Id"] == first["id"]
        await running.stop()


async def test_a_receiver_failing_three_times_gets_each_event_once_after_recovery(
    api: Api, operator: Actor, admin: Actor, settings: Settings
) -> None:
    async with receiver(failures=3) as hooks:
        created = await create_endpoint(api, operator, hooks.url)
        running = notifier(settings, None)
        await blocked_then_unblocked(api, operator, admin)
        assert await use(uuid.UUID(admin.team_id), "5.00")  # to zero: blocked again
        await drain(running)
        failed = [r for r in hooks.requests if r.status == 500]
        assert len(failed) == 3
        delivered = [b["id"] for b in bodies(hooks.accepted())]
        types = [b["type"] for b in bodies(hooks.accepted())]
        assert "team.blocked" in types
        assert "team.unblocked" in types
        assert len(delivered) == len(set(delivered))  # each event exactly once after recovery
        # Every event the failures were about is among them (same id, same body).
        assert {json.loads(r.body)["id"] for r in failed} <= set(delivered)
        assert {r.body for r in failed} <= {r.body for r in hooks.accepted()}
        # The delivery log tells the story: the first event took four attempts.
        endpoint_id = created["endpoint"]["id"]
        data = await api.ok(DELIVERIES, {"i": endpoint_id, "first": 50}, operator.token)
        nodes = [e["node"] for e in data["webhookDeliveries"]["edges"]]
        assert {n["status"] for n in nodes} == {"DELIVERED"}
        assert max(n["attempts"] for n in nodes) == 4
        assert all(n["lastStatusCode"] == 200 for n in nodes)
        await running.stop()


async def test_events_of_a_team_arrive_with_ids_that_order_them(
    api: Api, operator: Actor, admin: Actor, settings: Settings
) -> None:
    async with receiver() as hooks:
        await create_endpoint(api, operator, hooks.url)
        running = notifier(settings, None)
        team_id = uuid.UUID(admin.team_id)
        for _round in range(3):
            await blocked_then_unblocked(api, operator, admin)
            await drain(running)  # the unblock is found by the notifier's pass
            assert await use(team_id, "5.00")
        await drain(running)
        received = [b for b in bodies(hooks.accepted()) if b["data"].get("teamId") == admin.team_id]
        kinds = [b["type"] for b in received if b["type"].startswith("team.")]
        assert kinds == ["team.blocked", "team.unblocked"] * 3 + ["team.blocked"]
        ids = [b["id"] for b in received]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        sequences = [b["sequence"] for b in received]
        assert sequences == sorted(sequences)
        await running.stop()


async def test_the_log_pages_and_a_replay_sends_the_same_event_again(
    api: Api, operator: Actor, admin: Actor, settings: Settings
) -> None:
    async with receiver() as hooks:
        created = await create_endpoint(api, operator, hooks.url)
        endpoint_id = created["endpoint"]["id"]
        running = notifier(settings, None)
        await blocked_then_unblocked(api, operator, admin)
        await drain(running)
        page = await api.ok(DELIVERIES, {"i": endpoint_id, "first": 1}, operator.token)
        connection = page["webhookDeliveries"]
        assert len(connection["edges"]) == 1
        assert connection["pageInfo"]["hasNextPage"]
        after = connection["pageInfo"]["endCursor"]
        rest = await api.ok(DELIVERIES, {"i": endpoint_id, "after": after}, operator.token)
        nodes = [
            connection["edges"][0]["node"],
            *[e["node"] for e in rest["webhookDeliveries"]["edges"]],
        ]
        assert len({n["id"] for n in nodes}) == 2
        newest = nodes[0]
        data = await api.ok(REPLAY, {"i": newest["id"]}, operator.token)
        assert data["replayWebhookDelivery"]["errors"] == []
        await drain(running)
        ids = [b["id"] for b in bodies(hooks.accepted())]
        assert ids.count(newest["eventId"]) == 2  # the same id: the receiver deduplicates
        await running.stop()


async def test_endpoints_are_for_operators_and_urls_are_checked(
    api: Api, operator: Actor, admin: Actor
) -> None:
    body = await api.raw(
        'mutation { createWebhookEndpoint(input: {url: "https://x.example/h", '
        'events: ["team.blocked"]}) { secret errors { code } } }',
        token=admin.token,
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.raw(ENDPOINTS, token=admin.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for url, events, field in [
        ("ftp://files.example/h", ["team.blocked"], "url"),
        ("file:///etc/passwd", ["team.blocked"], "url"),
        ("https://x.example/h\r\nX: y", ["team.blocked"], "url"),
        ("https://x.example/h", ["team.deleted"], "events"),
        ("https://x.example/h", [], "events"),
    ]:
        payload = await create_endpoint(api, operator, url, events)
        assert payload["secret"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)]
    created = await create_endpoint(api, operator, "https://x.example/h", ["team.blocked"])
    listed = (await api.ok(ENDPOINTS, token=operator.token))["webhookEndpoints"]
    assert [e["id"] for e in listed] == [created["endpoint"]["id"]]
    assert "secret" not in listed[0]  # shown once, in the creating payload only
    data = await api.ok(DELETE_ENDPOINT, {"i": created["endpoint"]["id"]}, operator.token)
    assert data["deleteWebhookEndpoint"]["errors"] == []
    assert (await api.ok(ENDPOINTS, token=operator.token))["webhookEndpoints"] == []


async def test_a_redirect_is_not_followed_and_a_deleted_endpoint_gets_nothing(
    api: Api, operator: Actor, settings: Settings
) -> None:
    async with receiver(status=302) as moved, receiver() as gone:
        await create_endpoint(api, operator, moved.url, ["team.blocked"])
        deleted = await create_endpoint(api, operator, gone.url, ["team.blocked"])
        await api.ok(DELETE_ENDPOINT, {"i": deleted["endpoint"]["id"]}, operator.token)
        actor = await sign_up(api)
        running = notifier(settings, None)
        assert not await use(uuid.UUID(actor.team_id), "1.00")
        report = await running.run_pass()
        assert report.dispatched == 1
        assert report.failed == 1
        assert report.delivered == 0
        assert [r.status for r in moved.requests] == [302]  # tried once, not followed
        assert gone.requests == []
        await running.stop()


async def test_a_raised_limit_unblocks_through_the_notifiers_check(
    api: Api, operator: Actor, admin: Actor, settings: Settings
) -> None:
    async with receiver() as hooks:
        await create_endpoint(api, operator, hooks.url, ["team.blocked", "team.unblocked"])
        running = notifier(settings, None)
        assert not await use(uuid.UUID(admin.team_id), "1.00")  # no credits, no limit
        await drain(running)
        assert not await use(uuid.UUID(admin.team_id), "1.00")  # still blocked: told once
        await set_limit(admin.team_id, "10.00")  # no credits added: found by the pass
        await asyncio.sleep(0.1)  # blocked teams are re-checked on the timer (0.05 s here)
        report = await drain(running)
        assert report.unblocked == 1
        types = [b["type"] for b in bodies(hooks.accepted())]
        assert types == ["team.blocked", "team.unblocked"]
        await running.stop()


async def test_an_expired_hold_and_low_credits_are_told(
    api: Api, operator: Actor, admin: Actor, settings: Settings
) -> None:
    async with receiver() as hooks:
        await create_endpoint(api, operator, hooks.url, ["hold.expired", "credits.low"])
        running = notifier(settings, None)
        team_id = uuid.UUID(admin.team_id)
        await give(team_id, "10.00")
        await notification_settings.update(team_id, low_balance=units("5.00"))
        held = await hold(team_id, "2.00", ttl=60)
        clock.freeze(clock.now() + timedelta(minutes=2))
        assert await credits_service.expire_due(team_id)
        assert await use(team_id, "6.00")  # 10 -> 4: below the 5.00 threshold
        await drain(running)
        received = {b["type"]: b["data"] for b in bodies(hooks.accepted())}
        assert received["hold.expired"] == {"teamId": admin.team_id, "holdId": str(held.id)}
        low = received["credits.low"]
        assert (low["threshold"], low["credits"], low["kind"]) == ("5.00", "4.00", "CREDITS_LOW")
        await running.stop()
