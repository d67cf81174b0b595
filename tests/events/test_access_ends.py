"""Access ends when it is taken away: alert streams close on removal, sockets at expiry."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from app.credits import alerts
from app.credits.models import AlertKind
from app.events.commit import atomic
from app.teams import tokens
from tests.support.api import JWT_SECRET, Api, join, sign_up
from tests.support.subscriptions import REMOVE_MEMBER, LiveServer, Ws, listening, opened

ALERTS = """subscription($teamId: ID!) { billingAlerts(teamId: $teamId) { id kind } }"""
LEAVE = """mutation($t: ID!) { leaveTeam(input: {teamId: $t}) { errors { code } } }"""


async def _raise(team_id: str) -> None:
    async with atomic() as tx:
        await alerts.raise_alert(
            tx.conn, uuid.UUID(team_id), AlertKind.CREDITS_LOW, "low", key=uuid.uuid4().hex
        )


async def _ends_with_not_found(ws: Ws, op: str = "1") -> None:
    ended = await ws.recv()
    assert ended["id"] == op, ended
    assert ended["type"] == "next", ended
    assert ended["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await ws.recv() == {"id": op, "type": "complete"}


async def test_a_removed_members_alert_stream_ends_at_once(server: LiveServer, http: Api) -> None:
    owner = await sign_up(http)
    member = await sign_up(http)
    await join(http, owner, member)
    async with opened(server.ws_url, member.token) as ws, opened(server.ws_url, owner.token) as own:
        await ws.subscribe(owner.team_id, query=ALERTS)
        await own.subscribe(owner.team_id, query=ALERTS)
        await listening(alerts.alerts_channel(uuid.UUID(owner.team_id)))
        await asyncio.sleep(0.2)  # both listening
        await _raise(owner.team_id)
        assert (await ws.recv())["payload"]["data"]["billingAlerts"]["kind"] == "CREDITS_LOW"
        assert (await own.recv())["payload"]["data"]["billingAlerts"]["kind"] == "CREDITS_LOW"
        removed = await http.ok(REMOVE_MEMBER, {"t": owner.team_id, "e": member.email}, owner.token)
        assert removed["removeTeamMember"]["errors"] == []
        await _ends_with_not_found(ws)
        # The admin's stream goes on; the removed member hears nothing more.
        await _raise(owner.team_id)
        assert (await own.recv())["payload"]["data"]["billingAlerts"]["kind"] == "CREDITS_LOW"


async def test_leaving_ends_the_alert_stream_too(server: LiveServer, http: Api) -> None:
    owner = await sign_up(http)
    member = await sign_up(http)
    await join(http, owner, member)
    async with opened(server.ws_url, member.token) as ws:
        await ws.subscribe(owner.team_id, query=ALERTS)
        await listening(alerts.alerts_channel(uuid.UUID(owner.team_id)))
        left = await http.ok(LEAVE, {"t": owner.team_id}, member.token)
        assert left["leaveTeam"]["errors"] == []
        await _ends_with_not_found(ws)


async def test_a_websocket_closes_when_its_token_expires(server: LiveServer, http: Api) -> None:
    owner = await sign_up(http)
    short = tokens.mint(
        JWT_SECRET, subject=f"sub:{uuid.uuid4().hex}", email="brief@example.com",
        ttl=timedelta(seconds=2),
    )  # fmt: skip
    claims = tokens.verify(JWT_SECRET, short)
    async with opened(server.ws_url, short) as ws:
        viewer_team = (await http.ok("{ viewer { memberships { team { id } } } }", token=short))[
            "viewer"
        ]["memberships"][0]["team"]["id"]
        await ws.subscribe(viewer_team)
        first = await ws.recv()
        assert first["type"] == "next", first
        assert await ws.closed_with() == 4403
        assert time.time() >= claims.expires_at - 0.05
    # A token valid for longer keeps its socket.
    async with opened(server.ws_url, owner.token) as ws:
        await ws.subscribe(owner.team_id)
        await ws.next_credits()
