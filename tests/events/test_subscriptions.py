"""creditsUpdated over a real websocket: one uvicorn server in this process, memory broker.

Changes go through the server's HTTP API like a client's, or through the services for
the kinds other parts of the service publish (limit, expiry, any `credits_changed`).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import websockets

from app.billing import live
from app.config import Settings
from app.credits import service as credits
from app.credits.models import CreditAccount, CreditKind
from app.events import bus
from app.kit import clock
from app.kit.money import UNITS_PER_DOLLAR
from app.teams.models import Membership
from tests.support.api import Actor, Api, join, make_token, sign_up
from tests.support.billing import RECORD_USAGE
from tests.support.subscriptions import REMOVE_MEMBER, LiveServer, Ws, opened

ALLOWED_ORIGIN = "http://console.example"

GRANT = """mutation($t: ID!, $a: Decimal!, $d: String) {
  grantCredits(input: {teamId: $t, amount: $a, description: $d}) { errors { code } } }"""
TOTAL = "query($t: ID!) { team(id: $t) { credits { total } } }"


@pytest.fixture(scope="module")
async def server(database: Settings) -> AsyncIterator[LiveServer]:
    """The root conftest's server with a short init timeout and one allowed origin."""
    settings = database.model_copy(
        update={"ws_connection_init_timeout": 0.5, "cors_allow_origins": [ALLOWED_ORIGIN]}
    )
    live_server = LiveServer(settings)
    await live_server.start()
    yield live_server
    await live_server.stop()


@pytest.fixture
async def ops(http: Api) -> Actor:
    return await sign_up(http, "ops@platform.example", operator=True)


@pytest.fixture
async def owner(http: Api) -> Actor:
    return await sign_up(http, "owner@example.com")


async def grant(http: Api, ops: Actor, team_id: str, amount: str, note: str | None = None) -> None:
    data = await http.ok(GRANT, {"t": team_id, "a": amount, "d": note}, ops.token)
    assert data["grantCredits"]["errors"] == []


async def use(http: Api, ops: Actor, team_id: str, amount: str) -> None:
    key = uuid.uuid4().hex
    data = await http.ok(RECORD_USAGE, {"t": team_id, "a": amount, "k": key}, ops.token)
    assert data["recordUsage"]["errors"] == []


# --- what arrives -----------------------------------------------------------------------


async def test_first_message_is_the_current_state(
    server: LiveServer, http: Api, ops: Actor, owner: Actor
) -> None:
    await grant(http, ops, owner.team_id, "12.50")
    async with opened(server.ws_url, owner.token) as ws:
        await ws.subscribe(owner.team_id)
        first, extensions = await ws.next_credits()
    assert first["total"] == first["free"] == "12.50"
    assert first["status"] == "ACTIVE"
    assert [g["remaining"] for g in first["grants"]] == ["12.50"]
    # The first state reflects no particular commit.
    assert "committedAt" not in extensions


async def test_each_kind_of_change_arrives_with_its_commit_time(
    server: LiveServer, http: Api, ops: Actor, owner: Actor
) -> None:
    team = uuid.UUID(owner.team_id)
    async with opened(server.ws_url, owner.token) as ws:
        await ws.subscribe(owner.team_id)
        assert (await ws.next_credits())[0]["status"] == "CREDITS_EXHAUSTED"

        changes: list[tuple[str, Any, str]] = [
            ("grant", lambda: grant(http, ops, owner.team_id, "10.00"), "10.00"),
            ("usage", lambda: use(http, ops, owner.team_id, "0.25"), "9.75"),
            (
                "expiring grant",
                lambda: credits.grant_credits(
                    team,
                    CreditKind.PROMOTIONAL,
                    5 * UNITS_PER_DOLLAR,
                    expires_at=clock.now() + timedelta(hours=1),
                ),
                "14.75",
            ),
        ]
        for _kind, change, total in changes:
            before = clock.now().timestamp()
            await change()
            seen, extensions = await ws.until_total(total)
            assert isinstance(extensions["committedAt"], float)
            assert before - 1 <= extensions["pendingSince"] <= extensions["committedAt"]

        # The limit (set by its service, as the API or a payment flow would).
        await credits.set_invoiced_limit(team, 100 * UNITS_PER_DOLLAR)
        state, extensions = await ws.next_credits()
        assert state["invoicedSpendingLimit"] == "100.00"
        assert state["invoicedRemaining"] == "100.00"
        assert "committedAt" in extensions

        # Expiry: the promotional grant runs out an hour later.
        clock.advance(timedelta(hours=2))
        assert await credits.expire_due(team)
        seen, _ = await ws.until_total("9.75")
        assert [g["kind"] for g in seen[-1]["grants"]] == ["FREE"]

        # Purchases, invoice closes and the rest commit their change, then announce it.
        await CreditAccount.filter(team_id=team).update(invoicing_suspended=True)
        await bus.credits_changed(team)
        state, extensions = await ws.next_credits()
        assert state["invoicedRemaining"] == "0.00"
        assert "committedAt" in extensions
        # A notice for a change already shown sends nothing new; the next change arrives.
        await bus.credits_changed(team)
        await use(http, ops, owner.team_id, "0.75")
        state, _ = await ws.next_credits()
        assert state["total"] == "9.00"


async def test_a_burst_of_100_changes_ends_on_the_exact_final_balance(
    server: LiveServer, http: Api, ops: Actor, owner: Actor
) -> None:
    await grant(http, ops, owner.team_id, "100.00")
    amounts = [f"0.{i:02d}{i:06d}" for i in range(1, 101)]  # 0.01000001 ... 1.00000100
    final = str((Decimal("100") - sum(Decimal(a) for a in amounts)).normalize())
    assert final == "50.3999504"
    async with opened(server.ws_url, owner.token) as ws:
        await ws.subscribe(owner.team_id)
        assert (await ws.next_credits())[0]["total"] == "100.00"
        await asyncio.gather(*(use(http, ops, owner.team_id, a) for a in amounts))
        seen, _ = await ws.until_total(final)
        # Coalescing never invents a state: every one seen is a real balance on the way down.
        totals = [Decimal(s["total"]) for s in seen]
        assert totals == sorted(totals, reverse=True)
        data = await http.ok(TOTAL, {"t": owner.team_id}, owner.token)
        assert data["team"]["credits"]["total"] == final
        # Nothing else comes after it: a fresh subscription starts from the same balance, and
        # anything still arriving on the first one shows it too.
        await ws.subscribe(owner.team_id, op="2")
        while (message := await ws.recv())["id"] != "2":
            assert message["payload"]["data"]["creditsUpdated"]["total"] == final
        assert message["payload"]["data"]["creditsUpdated"]["total"] == final


async def test_subscribers_of_one_team_share_one_read_per_change(
    server: LiveServer, http: Api, ops: Actor, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real_view = credits.credits_view

    async def counting_view(team_id: uuid.UUID) -> credits.CreditsView:
        nonlocal reads
        reads += 1
        return await real_view(team_id)

    monkeypatch.setattr(live.credits, "credits_view", counting_view)
    sockets = [await Ws.open(server.ws_url, owner.token) for _ in range(5)]
    try:
        for ws in sockets:
            for op in ("1", "2", "3", "4"):
                await ws.subscribe(owner.team_id, op)
        for ws in sockets:
            await each_op_once(ws, "0.00")
        reads = 0
        await grant(http, ops, owner.team_id, "3.00")
        for ws in sockets:
            await each_op_once(ws, "3.00")
        # 20 subscribers of one team, one change: one read.
        assert reads == 1
    finally:
        for ws in sockets:
            await ws.close()


async def each_op_once(ws: Ws, total: str) -> None:
    """One balance for each of the connection's four subscriptions, in any order."""
    messages = [await ws.recv() for _ in range(4)]
    assert sorted(m["id"] for m in messages) == ["1", "2", "3", "4"]
    assert {m["payload"]["data"]["creditsUpdated"]["total"] for m in messages} == {total}


async def test_a_subscriber_that_stops_reading_delays_no_one(
    server: LiveServer, http: Api, ops: Actor, owner: Actor
) -> None:
    changes, stalled_ops = 30, [str(i) for i in range(20)]
    # Big balances (grants with long random descriptions, asked 20 times over on the
    # stalled connection, without compression) and small socket buffers at both ends: the
    # server's sends to it block after a few changes.
    big = "subscription($teamId: ID!) { creditsUpdated(teamId: $teamId) { total grants { description } } }"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with (
        opened(server.ws_url, owner.token) as reader,
        opened(
            server.ws_url,
            owner.token,
            sock=sock,
            max_queue=1,
            compression=None,
            ping_interval=None,
        ) as stalled,
    ):
        server.shrink_send_buffer(stalled.local_port)
        await reader.subscribe(owner.team_id)
        for op in stalled_ops:
            await stalled.subscribe(owner.team_id, op, query=big)
        await reader.next_credits()
        for index in range(1, changes + 1):
            await grant(http, ops, owner.team_id, "1.00", secrets.token_hex(250))
            # The reader sees every state, one by one, while the other connection is stuck.
            state, _ = await reader.next_credits()
            assert state["total"] == f"{index}.00"
        final = f"{changes}.00"
        # Once it reads again it catches up on the newest state, not on a backlog.
        last: dict[str, str] = {}
        received = 0
        while len(last) < len(stalled_ops) or set(last.values()) != {final}:
            message = await stalled.recv()
            received += 1
            last[message["id"]] = message["payload"]["data"]["creditsUpdated"]["total"]
        # Intermediate states were dropped while it was stuck, not queued.
        assert received < len(stalled_ops) * (changes + 1)
        # And the server keeps at most one undelivered snapshot per subscription.
        assert all(
            f._latest is None for feed in live.hub.feeds.values() for f in feed.all_followers()
        )


# --- who may listen ----------------------------------------------------------------------


async def test_missing_or_bad_token_closes_with_4403(server: LiveServer) -> None:
    for token in [None, "not-a-jwt", make_token("x@example.com")[:-3] + "abc"]:
        ws = await Ws.connect(server.ws_url)
        await ws.init(token)
        assert await ws.closed_with() == 4403


async def test_a_team_you_cannot_see_gets_an_error_message(
    server: LiveServer, http: Api, owner: Actor
) -> None:
    stranger = await sign_up(http, "stranger@example.com")
    async with opened(server.ws_url, stranger.token) as ws:
        for op, team_id in [("1", owner.team_id), ("2", str(uuid.uuid4())), ("3", "nope")]:
            await ws.subscribe(team_id, op)
            message = await ws.recv()
            assert message["type"] == "error", message
            assert message["id"] == op
            assert message["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        # The connection stays usable for the viewer's own team.
        await ws.subscribe(stranger.team_id, "4")
        assert (await ws.next_credits("4"))[0]["total"] == "0.00"


async def test_an_operator_may_watch_any_team(
    server: LiveServer, http: Api, ops: Actor, owner: Actor
) -> None:
    async with opened(server.ws_url, ops.token) as ws:
        await ws.subscribe(owner.team_id)
        assert (await ws.next_credits())[0]["total"] == "0.00"
        await grant(http, ops, owner.team_id, "1.00")
        await ws.until_total("1.00")


async def test_a_removed_member_stops_receiving(
    server: LiveServer, http: Api, ops: Actor, owner: Actor
) -> None:
    member = await sign_up(http, "member@example.com")
    await join(http, owner, member)
    async with opened(server.ws_url, member.token) as ws:
        # One at a time: two subscriptions' first balances may arrive in either order.
        await ws.subscribe(owner.team_id, "team")
        await ws.next_credits("team")
        await ws.subscribe(member.team_id, "own")
        await ws.next_credits("own")
        await grant(http, ops, owner.team_id, "2.00")
        await ws.until_total("2.00", "team")

        data = await http.ok(REMOVE_MEMBER, {"t": owner.team_id, "e": member.email}, owner.token)
        assert data["removeTeamMember"]["errors"] == []
        ended = await ws.recv()
        assert ended["id"] == "team", ended
        assert ended["type"] == "next", ended
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert await ws.recv() == {"id": "team", "type": "complete"}

        # Later changes reach nobody there; the member's own team still streams.
        await grant(http, ops, owner.team_id, "3.00")
        await grant(http, ops, member.team_id, "4.00")
        state, _ = await ws.next_credits("own")
        assert state["total"] == "4.00"


async def test_the_periodic_sweep_ends_access_lost_without_an_event(
    server: LiveServer, http: Api, owner: Actor
) -> None:
    member = await sign_up(http, "quiet@example.com")
    await join(http, owner, member)
    async with opened(server.ws_url, member.token) as ws:
        await ws.subscribe(owner.team_id)
        await ws.next_credits()
        # A membership gone without members_changed (a lost notice, a manual fix).
        await Membership.filter(team_id=owner.team_id, user__email=member.email).delete()
        await live.hub.sweep()
        ended = await ws.recv()
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert await ws.recv() == {"id": "1", "type": "complete"}


async def test_shutdown_completes_open_subscriptions(server: LiveServer, owner: Actor) -> None:
    async with opened(server.ws_url, owner.token) as ws:
        await ws.subscribe(owner.team_id)
        await ws.next_credits()
        # What the app's shutdown does before closing the broker.
        await live.hub.close()
        assert await ws.recv() == {"id": "1", "type": "complete"}


# --- the protocol's guards ----------------------------------------------------------------


async def test_the_legacy_graphql_ws_protocol_is_refused(server: LiveServer) -> None:
    ws = await Ws.connect(server.ws_url, subprotocol="graphql-ws")
    assert ws.conn.subprotocol is None
    assert await ws.closed_with() == 4406


async def test_no_connection_init_in_time_closes_the_socket(server: LiveServer) -> None:
    # The test server waits 0.5 s (WS_CONNECTION_INIT_TIMEOUT; 10 s by default).
    ws = await Ws.connect(server.ws_url)
    assert await ws.closed_with() == 4408


async def test_subscribing_before_connection_init_closes_the_socket(
    server: LiveServer, owner: Actor
) -> None:
    ws = await Ws.connect(server.ws_url)
    await ws.subscribe(owner.team_id)
    assert await ws.closed_with() == 4401


async def test_the_21st_subscription_on_a_connection_is_refused(
    server: LiveServer, owner: Actor
) -> None:
    async with opened(server.ws_url, owner.token) as ws:
        for op in range(1, 21):
            await ws.subscribe(owner.team_id, str(op))
        for _ in range(20):
            message = await ws.recv()
            assert message["type"] == "next", message
        await ws.subscribe(owner.team_id, "21")
        refused = await ws.recv()
        assert refused["type"] == "error", refused
        assert refused["id"] == "21", refused
        assert "limit" in refused["payload"][0]["message"].lower()
        # Completing one frees a slot.
        await ws.send({"id": "1", "type": "complete"})
        await ws.subscribe(owner.team_id, "22")
        message = await ws.recv()
        assert message["type"] == "next", message
        assert message["id"] == "22", message


async def test_browser_origins_must_be_allowed(server: LiveServer, owner: Actor) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Ws.connect(server.ws_url, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    async with opened(server.ws_url, owner.token, origin=ALLOWED_ORIGIN) as ws:
        await ws.subscribe(owner.team_id)
        await ws.next_credits()


async def test_settings_default_to_the_contract() -> None:
    settings = Settings()
    assert settings.ws_connection_init_timeout == 10
    assert settings.ws_max_subscriptions == 20
