"""creditsUpdated across processes: real `python -m app serve` servers sharing the test
database and the Redis on 127.0.0.1:6379 (BROKER_URL=redis://...).

Two single-worker servers on two ports show a change crossing from one process to the
other in a chosen direction; one `--workers 2` server shows the same with uvicorn's own
workers, each subscriber's worker found from /proc.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from app.config import Settings
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import RECORD_USAGE
from tests.support.subscriptions import (
    REDIS_URL,
    REMOVE_MEMBER,
    ServerProcess,
    Ws,
    http_api,
    opened,
)

GRANT = """mutation($t: ID!, $a: Decimal!) {
  grantCredits(input: {teamId: $t, amount: $a}) { errors { code } } }"""


async def _started(*servers: ServerProcess) -> None:
    try:
        await asyncio.gather(*(server.wait_ready() for server in servers))
    except BaseException:
        for server in servers:
            server.stop()
        raise


@pytest.fixture(scope="module")
async def redis_up() -> str:
    """Redis must answer: the cross-worker case fails without it, never skips."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture(scope="module")
async def pair(database: Settings, redis_up: str) -> AsyncIterator[tuple[ServerProcess, ...]]:
    """Two single-worker servers (two processes) on two ports."""
    servers = (
        ServerProcess(database.database_url, redis_up),
        ServerProcess(database.database_url, redis_up),
    )
    await _started(*servers)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
async def workers(database: Settings, redis_up: str) -> AsyncIterator[ServerProcess]:
    """`python -m app serve --workers 2`."""
    server = ServerProcess(database.database_url, redis_up, workers=2)
    await _started(server)
    yield server
    server.stop()


@pytest.fixture
async def apis(pair: tuple[ServerProcess, ...]) -> AsyncIterator[tuple[Api, Api]]:
    first, second = http_api(pair[0].http_url), http_api(pair[1].http_url)
    yield first, second
    await first.http.aclose()
    await second.http.aclose()


async def actors(http: Api) -> tuple[Actor, Actor]:
    # Unique emails: the servers cache verified tokens across tests.
    tag = uuid.uuid4().hex[:8]
    ops = await sign_up(http, f"ops-{tag}@platform.example", operator=True)
    owner = await sign_up(http, f"owner-{tag}@example.com")
    return ops, owner


async def change(http: Api, ops: Actor, team_id: str, query: str, amount: str) -> None:
    variables = {"t": team_id, "a": amount, "k": uuid.uuid4().hex}
    data = await http.ok(query, variables, ops.token)
    assert next(iter(data.values()))["errors"] == []


async def test_a_change_on_one_process_reaches_subscribers_on_the_other(
    pair: tuple[ServerProcess, ...], apis: tuple[Api, Api]
) -> None:
    first, second = pair
    api_first, api_second = apis
    ops, owner = await actors(api_first)
    async with (
        opened(first.ws_url, owner.token) as on_first,
        opened(second.ws_url, owner.token) as on_second,
    ):
        await on_first.subscribe(owner.team_id)
        await on_second.subscribe(owner.team_id)
        assert (await on_first.next_credits())[0]["total"] == "0.00"
        assert (await on_second.next_credits())[0]["total"] == "0.00"

        # Made on the second process, seen on both.
        await change(api_second, ops, owner.team_id, GRANT, "5.00")
        state, extensions = await on_first.next_credits()
        assert state["total"] == "5.00"
        assert isinstance(extensions["committedAt"], float)
        assert (await on_second.next_credits())[0]["total"] == "5.00"

        # And the other way round.
        await change(api_first, ops, owner.team_id, RECORD_USAGE, "1.25")
        assert (await on_second.next_credits())[0]["total"] == "3.75"
        assert (await on_first.next_credits())[0]["total"] == "3.75"


async def test_a_member_removed_on_one_process_stops_receiving_on_the_other(
    pair: tuple[ServerProcess, ...], apis: tuple[Api, Api]
) -> None:
    first, _second = pair
    api_first, api_second = apis
    _ops, owner = await actors(api_first)
    member = await sign_up(api_first, f"member-{uuid.uuid4().hex[:8]}@example.com")
    await join(api_first, owner, member)
    async with opened(first.ws_url, member.token) as ws:
        await ws.subscribe(owner.team_id)
        await ws.next_credits()
        data = await api_second.ok(
            REMOVE_MEMBER, {"t": owner.team_id, "e": member.email}, owner.token
        )
        assert data["removeTeamMember"]["errors"] == []
        ended = await ws.recv()
        assert ended["type"] == "next", ended
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert await ws.recv() == {"id": "1", "type": "complete"}


async def test_two_uvicorn_workers_deliver_every_change_to_both(workers: ServerProcess) -> None:
    pids = set(workers.worker_pids())
    assert len(pids) == 2
    api = http_api(workers.http_url)
    sockets: list[Ws] = []
    try:
        ops, owner = await actors(api)
        owners: dict[int, list[Ws]] = {}
        # The kernel picks the worker of each connection: open until both have subscribers.
        while len(owners) < 2:
            assert len(sockets) < 60, f"every connection landed on {set(owners)}"
            ws = await Ws.open(workers.ws_url, owner.token)
            sockets.append(ws)
            await ws.subscribe(owner.team_id)
            assert (await ws.next_credits())[0]["total"] == "0.00"
            pid = workers.owner_of(ws.local_port)
            assert pid in pids
            owners.setdefault(pid, []).append(ws)

        # Each change is made on whichever worker takes the request; all must see it.
        for amount, total in [("2.00", "2.00"), ("3.00", "5.00"), ("4.50", "9.50")]:
            await change(api, ops, owner.team_id, GRANT, amount)
            for ws in sockets:
                _seen, extensions = await ws.until_total(total)
                assert "committedAt" in extensions
    finally:
        for ws in sockets:
            await ws.close()
        await api.http.aclose()
