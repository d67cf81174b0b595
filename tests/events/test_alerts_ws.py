"""billingAlerts over a real websocket (graphql-transport-ws), as the console listens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.credits import alerts
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import RECORD_USAGE, set_limit
from tests.support.subscriptions import LiveServer, Ws, listening, opened

ALERTS = """subscription($teamId: ID!) { billingAlerts(teamId: $teamId) { id kind message } }"""


async def next_alert(ws: Ws) -> dict[str, Any]:
    message = await ws.recv()
    assert message["type"] == "next", message
    assert not message["payload"].get("errors"), message
    alert: dict[str, Any] = message["payload"]["data"]["billingAlerts"]
    return alert


async def test_usage_crossing_the_limit_pushes_each_alert_once(
    server: LiveServer, http: Api
) -> None:
    ops = await sign_up(http, "ops@platform.example", operator=True)
    owner: Actor = await sign_up(http)
    await set_limit(owner.team_id, "10.00")
    async with opened(server.ws_url, owner.token) as ws:
        await ws.subscribe(owner.team_id, query=ALERTS)
        await listening(alerts.alerts_channel(uuid.UUID(owner.team_id)))
        for index in range(12):  # 12 x 1.00 against 10.00: 80% and 100% are crossed once
            await http.ok(
                RECORD_USAGE, {"t": owner.team_id, "a": "1.00", "k": f"u{index}"}, ops.token
            )
        first = await next_alert(ws)
        second = await next_alert(ws)
        assert [first["kind"], second["kind"]] == ["INVOICED_LIMIT_80", "INVOICED_LIMIT_100"]
        # Nothing else follows: another refused event raises nothing.
        await http.ok(RECORD_USAGE, {"t": owner.team_id, "a": "1.00", "k": "u-last"}, ops.token)
        with pytest.raises(TimeoutError):
            await ws.recv(wait=0.5)


async def test_another_teams_alerts_are_not_found(server: LiveServer, http: Api) -> None:
    owner = await sign_up(http)
    stranger = await sign_up(http)
    async with opened(server.ws_url, stranger.token) as ws:
        await ws.subscribe(owner.team_id, query=ALERTS)
        message = await ws.recv()
    assert message["type"] == "error", message
    assert message["payload"][0]["extensions"]["code"] == "NOT_FOUND"
