"""Rate limits shared through Redis: every replica draws from the same counts.

Each "replica" here is an app of its own (its own limiter, its own Redis connection) on
the suite's database, as separate processes would be; the Redis keys live under a random
prefix. Needs the Redis on 127.0.0.1:6379 (TEST_REDIS_URL), and fails loudly without it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from app.config import Settings
from app.credits.models import UsageRecord
from app.kit.origin import client_address
from app.kit.ratelimit import Blocklist, Rate, RateLimiter, RedisLimiter, limiter_for
from app.main import create_app
from tests.support.api import Api, sign_up
from tests.support.billing import grant
from tests.support.subscriptions import REDIS_URL

LIMIT = """mutation($t: ID!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: "0"}) {
  errors { code } } }"""


@pytest.fixture
def prefix() -> str:
    return f"test-ratelimit-{uuid.uuid4().hex}"


@pytest.fixture
async def replicas(database: Settings, prefix: str) -> AsyncIterator[list[Api]]:
    """Three apps with a Redis broker: 5 mutations a minute per team, 4 /v1 requests a
    minute per operator, 3 failed /v1 authentications a minute per client address; users
    are not the binding limit."""
    settings = database.model_copy(
        update={
            "broker_url": REDIS_URL,
            "rate_limit_redis_prefix": prefix,
            "rate_limit_user_per_minute": 1000,
            "rate_limit_team_per_minute": 5,
            "rate_limit_operator_per_minute": 4,
            "rate_limit_unauthenticated_per_minute": 3,
        }
    )
    apps = [create_app(settings, manage_db=False) for _ in range(3)]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        for app in apps
    ]
    try:
        yield [Api(client) for client in clients]
    finally:
        for client in clients:
            await client.aclose()
        for app in apps:
            await app.state.rate_limiter.close()


def test_the_broker_decides_where_limits_live() -> None:
    assert isinstance(limiter_for("memory://"), RateLimiter)
    assert isinstance(limiter_for("redis://127.0.0.1:6379/0"), RedisLimiter)


async def test_a_teams_limit_holds_across_replicas(replicas: list[Api]) -> None:
    owner = await sign_up(replicas[0], "cluster-owner@example.com")
    answers = []
    for i in range(9):  # round robin, as the load balancer spreads them
        data = await replicas[i % 3].ok(LIMIT, {"t": owner.team_id}, owner.token)
        answers.append(data["setInvoicedSpendingLimit"]["errors"])
    # Per process the team would have had 5 on each replica (15); across the cluster, 5.
    assert answers == [[]] * 5 + [[{"code": "RATE_LIMITED"}]] * 4
    # Another team has its own count.
    other = await sign_up(replicas[1], "cluster-other@example.com")
    data = await replicas[2].ok(LIMIT, {"t": other.team_id}, other.token)
    assert data["setInvoicedSpendingLimit"]["errors"] == []


async def test_v1_requests_are_limited_per_caller_across_replicas(replicas: list[Api]) -> None:
    operator = await sign_up(replicas[0], "cluster-ops@platform.example", operator=True)
    team = await sign_up(replicas[0], "cluster-customer@example.com")
    await grant(replicas[0], operator, team.team_id, "10.00")  # a mutation: 1 of the 4
    statuses = []
    for i in range(5):
        response = await replicas[i % 3].http.post(
            "/v1/usage",
            json={"teamId": team.team_id, "amount": "0.01", "idempotencyKey": f"c{i}"},
            headers={"Authorization": f"Bearer {operator.token}"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "RATE_LIMITED"
            assert response.headers["retry-after"] == "1"
    assert statuses == [200, 200, 200, 429, 429]
    assert await UsageRecord.all().count() == 3
    # A stranger without credentials is refused as before, and spends nobody's count.
    response = await replicas[1].http.post("/v1/usage", json={})
    assert response.status_code == 401


async def test_two_limiters_share_one_count(prefix: str) -> None:
    first, second = RedisLimiter(REDIS_URL, prefix=prefix), RedisLimiter(REDIS_URL, prefix=prefix)
    try:
        rate = Rate(per_minute=10)
        for limiter in (first, second):  # connected before counting (see the burst test)
            assert await limiter.allow([("team:warm-up", rate)]) is None
        admitted = 0
        for i in range(30):
            if await (first if i % 2 else second).allow([("team:x", rate)]) is None:
                admitted += 1
        assert admitted == 10
        # The first of two checks that refuses is named; a batch's cost counts whole.
        assert await first.allow([("user:y", Rate(100)), ("team:x", rate)]) == "team:x"
        assert await second.allow([("team:z", rate)], cost=10) is None
        assert await first.allow([("team:z", rate)]) == "team:z"
    finally:
        await first.close()
        await second.close()


async def test_without_redis_requests_go_through(prefix: str) -> None:
    """Nothing listens on port 9: the limits cannot be counted, billing goes on."""
    limiter = RedisLimiter("redis://127.0.0.1:9/0", prefix=prefix)
    try:
        assert await limiter.allow([("team:x", Rate(1))]) is None
        assert await limiter.allow([("team:x", Rate(1))]) is None
    finally:
        await limiter.close()


async def test_failed_authentications_are_limited_by_address(replicas: list[Api]) -> None:
    """Guessing keys: 3 failures a minute from one address across the replicas, then 429
    before any credential is looked at, on each replica that has refused it."""
    operator = await sign_up(replicas[0], "cluster-guessed@platform.example", operator=True)
    team = await sign_up(replicas[0], "cluster-guessed-team@example.com")
    await grant(replicas[0], operator, team.team_id, "10.00")
    body = {"teamId": team.team_id, "amount": "0.01", "idempotencyKey": "g"}
    statuses = []
    for i in range(5):
        response = await replicas[i % 3].http.post(
            "/v1/usage", json=body, headers={"Authorization": f"Bearer cls_guess{i}"}
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429, 429]
    # Replicas 0 and 1 refused the address: even a valid key from it waits there. Replica 2
    # has not been asked since; a valid caller is never counted against the address.
    good = {"Authorization": f"Bearer {operator.token}"}
    assert (await replicas[0].http.post("/v1/usage", json=body, headers=good)).status_code == 429
    assert (await replicas[2].http.post("/v1/usage", json=body, headers=good)).status_code == 200
    assert await UsageRecord.all().count() == 1


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def test_the_client_address_behind_trusted_proxies() -> None:
    # Not a trusted proxy: its own address, whatever it claims.
    assert client_address(_request("203.0.113.9", "198.51.100.1"), ["10.0.0.0/8"]) == (
        "203.0.113.9"
    )
    # Behind two trusted hops: the last address they did not add themselves.
    chain = "1.2.3.4, 198.51.100.7, 10.0.0.5"
    assert client_address(_request("10.0.0.2", chain), ["10.0.0.0/8"]) == "198.51.100.7"
    # "*": the entry the one proxy appended.
    assert client_address(_request("10.0.0.2", "1.2.3.4, 198.51.100.7"), ["*"]) == ("198.51.100.7")
    assert client_address(_request("10.0.0.2"), ["10.0.0.0/8"]) == "10.0.0.2"


def test_the_blocklist_forgets_and_stays_bounded() -> None:
    now = [0.0]
    blocklist = Blocklist(clock=lambda: now[0], max_keys=4)
    assert not blocklist
    blocklist.block("a", 60)
    assert blocklist.blocked("a")
    assert not blocklist.blocked("b")
    now[0] = 61
    assert not blocklist.blocked("a")
    for key in "bcdefg":
        blocklist.block(key, 60)
    assert len(blocklist._until) <= 4
    assert blocklist.blocked("g")


async def test_a_burst_waits_for_redis_and_is_counted(prefix: str) -> None:
    """1,200 checks at once from one process (more than redis-py's default cap of
    connections): they queue for the limiter's connection, none is let through
    uncounted. (The connection is made first: on a loaded machine, connecting within the
    burst may exceed the connect timeout, which lets checks through as Redis being down
    must.)"""
    limiter = RedisLimiter(REDIS_URL, prefix=prefix, connections=1)
    try:
        rate = Rate(per_minute=100)
        assert await limiter.allow([("team:warm-up", rate)]) is None
        answers = await asyncio.gather(
            *(limiter.allow([("team:burst", rate)]) for _ in range(1200))
        )
        assert sum(1 for refused in answers if refused is None) == 100
    finally:
        await limiter.close()


async def test_a_high_limit_is_leased_in_parts(prefix: str) -> None:
    """6,000 a minute (a gateway's kind of limit): each process takes 10 at a time from
    Redis and spends them locally. Across two processes 6,000 are admitted, less at most
    what each has left of its lease, and a fraction of the checks go to Redis."""
    first, second = RedisLimiter(REDIS_URL, prefix=prefix), RedisLimiter(REDIS_URL, prefix=prefix)
    round_trips = 0
    for limiter in (first, second):
        hit = limiter._strategy.hit

        async def counted(*args: Any, _hit: Any = hit, **kwargs: Any) -> bool:
            nonlocal round_trips
            round_trips += 1
            return bool(await _hit(*args, **kwargs))

        limiter._strategy.hit = counted  # type: ignore[method-assign]
    try:
        rate = Rate(per_minute=6000)
        for limiter in (first, second):  # connected before counting (see the burst test)
            assert await limiter.allow([("team:warm-up", Rate(100))]) is None
        round_trips = 0
        admitted = 0
        for i in range(6100):
            if await (first if i % 2 else second).allow([("service-key:gw", rate)]) is None:
                admitted += 1
        assert 6000 - 2 * 9 <= admitted <= 6000
        # 600 leases, then two tries (a lease, then exactly) for each check near the end.
        assert round_trips < 1000
    finally:
        await first.close()
        await second.close()


async def test_concurrent_checks_share_one_lease_renewal(prefix: str) -> None:
    """64 requests at once on a gateway's limit: when the lease runs out, one of them
    takes the next and the others spend from it. Each taking its own would throw all
    but one away and spend the minute's limit many times faster than requests come."""
    limiter = RedisLimiter(REDIS_URL, prefix=prefix)
    leases = 0
    hit = limiter._strategy.hit

    async def counted(*args: Any, _hit: Any = hit, **kwargs: Any) -> bool:
        nonlocal leases
        leases += 1
        return bool(await _hit(*args, **kwargs))

    limiter._strategy.hit = counted  # type: ignore[method-assign]
    try:
        rate = Rate(per_minute=600_000)  # leases of 1,000
        assert await limiter.allow([("team:warm-up", Rate(100))]) is None
        leases = 0

        async def client() -> int:
            admitted = 0
            for _ in range(500):
                if await limiter.allow([("service-key:gw", rate)]) is None:
                    admitted += 1
            return admitted

        admitted = sum(await asyncio.gather(*(client() for _ in range(64))))
        assert admitted == 64 * 500
        # 32,000 checks need 32 leases of 1,000.
        assert leases <= 33
    finally:
        await limiter.close()
