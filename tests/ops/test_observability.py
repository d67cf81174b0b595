"""/metrics: webhook outcomes and open subscriptions; structured logs carry the request id."""

from __future__ import annotations

import json
import uuid

import httpx

from app.billing import live
from tests.support.api import Actor
from tests.support.metrics import sample
from tests.support.payments import deliver, signed


async def _metrics(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_webhook_deliveries_are_counted_by_outcome(client: httpx.AsyncClient) -> None:
    name = "creditline_webhook_events_total"
    before = await _metrics(client)
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    assert (await deliver(client, event)).json()["outcome"] == "ignored"
    assert (await deliver(client, event)).json()["outcome"] == "duplicate"
    body, headers = signed(event, secret="whsec_wrong")
    assert (await client.post("/webhooks/stripe", content=body, headers=headers)).status_code == 400
    body, headers = signed(json.dumps({"id": "evt_x"}))
    assert (await client.post("/webhooks/stripe", content=body, headers=headers)).status_code == 400
    after = await _metrics(client)
    for outcome, count in (("ignored", 1), ("duplicate", 1), ("rejected", 2)):
        delta = sample(after, name, {"outcome": outcome}) - sample(
            before, name, {"outcome": outcome}
        )
        assert delta == count, outcome


async def test_open_subscriptions_are_a_gauge(client: httpx.AsyncClient, admin: Actor) -> None:
    team = uuid.UUID(admin.team_id)
    assert "creditline_subscriptions 0.0" in await _metrics(client)
    async with live.follow(team, None), live.follow(team, None):
        text = await _metrics(client)
        assert "creditline_subscriptions 2.0" in text
        assert "creditline_subscription_feeds 1.0" in text
    assert "creditline_subscriptions 0.0" in await _metrics(client)
