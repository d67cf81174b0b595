"""Token buckets in process memory: O(1) per check, bounded in size.

Per process: with `serve --workers N` (or several hosts) each process keeps its own
buckets, so the effective limit is N times the configured one. That is the trade made
to keep the check off the network on the usage hot path; a shared limit would need
Redis (one round trip per mutation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


class RateLimiter:
    """Buckets by key; `allow` takes one token from each named bucket, or from none."""

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

    def allow(self, checks: Sequence[tuple[str, Rate]]) -> str | None:
        """Takes a token from every bucket and returns None; or, when one is empty, takes
        none and returns that bucket's key."""
        now = self._clock()
        buckets = []
        for key, rate in checks:
            bucket = self._level(key, rate, now)
            if bucket[0] < 1.0:
                return key
            buckets.append(bucket)
        for bucket in buckets:
            bucket[0] -= 1.0
        return None

    def clear(self) -> None:
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)
