"""Rate limits: `limiter_for` picks where the counts live.

- With a Redis broker (`BROKER_URL=redis://...`): in Redis, shared by every worker of
  every replica, so a limit of N a minute admits N across the whole cluster. Each check
  is one round trip (the `limits` library's sliding window counter, a Lua script).
- With `BROKER_URL=memory://` (one process, development and tests): token buckets in
  process memory, O(1) per check, bounded in size.

Keys are built by the caller from who it authenticated (`user:<id>`, `team:<id>`), never
from anything a client sends before it is known.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import BlockingConnectionPool

log = structlog.get_logger(__name__)

MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_minute` requests a minute, with bursts up to `burst` (default: a minute's worth)."""

    per_minute: int
    burst: int | None = None

    @property
    def capacity(self) -> float:
        return float(self.burst if self.burst is not None else self.per_minute)

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


class Limiter(Protocol):
    """What the interfaces call: `allow` spends `cost` from each named limit in turn and
    returns None, or the key of the first one that is used up (and spends nothing more)."""

    async def allow(self, checks: Sequence[tuple[str, Rate]], cost: int = 1) -> str | None: ...

    async def close(self) -> None: ...


class RateLimiter:
    """Token buckets by key in this process; `take` takes one token from each named
    bucket, or from none."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # key -> [tokens, last refill instant]
        self._buckets: dict[str, list[float]] = {}

    def _level(self, key: str, rate: Rate, now: float) -> list[float]:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now, rate)
            bucket = self._buckets[key] = [rate.capacity, now]
            return bucket
        elapsed = now - bucket[1]
        if elapsed > 0:
            bucket[0] = min(rate.capacity, bucket[0] + elapsed * rate.per_second)
            bucket[1] = now
        return bucket

    def _prune(self, now: float, rate: Rate) -> None:
        # Buckets idle long enough to be full again hold no information: drop them.
        # If every bucket is busy, drop the oldest half rather than grow without bound.
        idle_for = rate.capacity / rate.per_second if rate.per_second else 0.0
        stale = [k for k, (_, last) in self._buckets.items() if now - last >= idle_for]
        if len(stale) < len(self._buckets) // 10:
            stale = list(self._buckets)[: len(self._buckets) // 2]
        for key in stale:
            del self._buckets[key]

    def take(self, checks: Sequence[tuple[str, Rate]], cost: int = 1) -> str | None:
        """Takes `cost` tokens from every bucket and returns None; or, when one holds fewer,
        takes none and returns that bucket's key."""
        now = self._clock()
        buckets = []
        for key, rate in checks:
            bucket = self._level(key, rate, now)
            if bucket[0] < cost:
                return key
            buckets.append(bucket)
        for bucket in buckets:
            bucket[0] -= cost
        return None

    async def allow(self, checks: Sequence[tuple[str, Rate]], cost: int = 1) -> str | None:
        return self.take(checks, cost)

    async def close(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


class RedisLimiter:
    """Limits shared by every process through Redis: a sliding window counter per key (two
    counters, one round trip per check), so N a minute admits N in any minute, give or
    take the weighting of the previous window.

    Checks run in order and stop at the first refusal: a refused team check has already
    spent the caller's own (never the other way round), which costs only the caller.
    When Redis cannot be reached the request goes through (logged): the limits protect
    the service from abuse, and billing must not stop because they cannot be counted.

    A high limit (the metering gateway's 600,000 a minute) would cost a round trip on
    every usage event for a count that is nowhere near its end. For a limit of at least
    `LEASE_FROM` a minute, a process takes a lease of 1/`LEASE_PARTS` of it from Redis in
    one hit and spends it locally, so a round trip comes once per lease; near the limit
    a lease is refused and each check goes to Redis again, exactly. What a process
    leased and did not spend within the window counts as spent: the limit may admit less
    than N by up to a lease per process, never more than N plus a lease per concurrent
    lease taker. Smaller limits (users, teams, addresses) are counted one by one.
    """

    LEASE_FROM = 6_000
    LEASE_PARTS = 600

    def __init__(
        self, url: str, *, prefix: str = "creditline:ratelimit", connections: int = 32
    ) -> None:
        # A few connections per process, waited for when all are busy (a check holds one
        # for a round trip): without a cap a burst of requests would open one each, and
        # past the library's cap they would fail, and fail open. Waiting for a connection
        # may take long (a burst queues, and is slowed down rather than let through);
        # Redis itself not answering gives up after a second (two to connect).
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=connections,
            timeout=10.0,
            socket_timeout=1.0,
            socket_connect_timeout=2.0,
        )
        self._storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            key_prefix=prefix,
            wrap_exceptions=True,
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}
        # key -> [tokens left in this process's lease, monotonic time the lease ends]
        self._leases: dict[str, list[float]] = {}
        self._renewals: dict[str, asyncio.Lock] = {}

    def _item(self, rate: Rate) -> RateLimitItemPerMinute:
        item = self._items.get(rate.per_minute)
        if item is None:
            item = self._items[rate.per_minute] = RateLimitItemPerMinute(rate.per_minute)
        return item

    async def allow(self, checks: Sequence[tuple[str, Rate]], cost: int = 1) -> str | None:
        for key, rate in checks:
            try:
                admitted = await self._admit(key, rate, cost)
            except Exception as error:  # noqa: BLE001 - any storage failure: fail open
                log.warning("ratelimit.unavailable", error=str(error))
                return None
            if not admitted:
                return key
        return None

    async def _admit(self, key: str, rate: Rate, cost: int) -> bool:
        item = self._item(rate)
        size = rate.per_minute // self.LEASE_PARTS if rate.per_minute >= self.LEASE_FROM else 0
        if size < cost:
            return await self._strategy.hit(item, key, cost=cost)
        if self._spend(key, cost):  # spent locally: no round trip
            return True
        # One renewal at a time per key: the checks that found the lease empty meanwhile
        # wait for it and spend from it. Each taking a lease of its own (64 concurrent
        # requests, 64 leases, all but the last one's thrown away) used up a limit of
        # 600,000 a minute at 36,000 requests.
        renewal = self._renewals.get(key)
        if renewal is None:
            if len(self._renewals) >= MAX_KEYS:
                self._renewals = {k: v for k, v in self._renewals.items() if v.locked()}
            renewal = self._renewals[key] = asyncio.Lock()
        async with renewal:
            if self._spend(key, cost):
                return True
            if await self._strategy.hit(item, key, cost=size):
                now = time.monotonic()
                if len(self._leases) >= MAX_KEYS:
                    self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
                self._leases[key] = [float(size - cost), now + float(item.get_expiry())]
                return True
        # Near the limit: no lease left to take, count this one exactly.
        return await self._strategy.hit(item, key, cost=cost)

    def _spend(self, key: str, cost: int) -> bool:
        lease = self._leases.get(key)
        if lease is not None and lease[1] > time.monotonic() and lease[0] >= cost:
            lease[0] -= cost
            return True
        return False

    async def close(self) -> None:
        await self._pool.disconnect()


def limiter_for(broker_url: str, *, prefix: str = "creditline:ratelimit") -> Limiter:
    """Redis-backed limits with a Redis broker; buckets in this process only with
    `memory://` (which already means one process)."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisLimiter(broker_url, prefix=prefix)
    return RateLimiter()


class Blocklist:
    """Keys refused in this process until a moment, checked without a network call: what
    a shared limit said was over stays refused here for a while without asking again.
    Bounded: when full, the entries that have run out go, else the oldest half."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._until: dict[str, float] = {}

    def blocked(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._until[key]
        return False

    def block(self, key: str, seconds: float) -> None:
        now = self._clock()
        if len(self._until) >= self._max_keys:
            spent = [k for k, until in self._until.items() if until <= now]
            for k in spent or list(self._until)[: len(self._until) // 2]:
                del self._until[k]
        self._until[key] = now + seconds

    def __bool__(self) -> bool:
        return bool(self._until)
