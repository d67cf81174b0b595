"""A Hypothesis property through the API: for random ranges, granularities and groupings,
`Team.usage` equals what the raw records (read back through `Team.usageRecords`) add up
to, to the last 1e-8: the rollups and the record-read edges together lose nothing.

The property runs in a worker thread (Hypothesis drives a sync function); each example
asks the API on the test's event loop, where the app and its database live.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.credits.models import UsageDailyRollup, UsageRollup
from app.credits.store import day_of
from app.kit import clock
from tests.support.api import Actor, Api
from tests.support.billing import grant, set_limit
from tests.support.history import SERIES, all_records

BATCH = """mutation($e: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $e}) {
  results { errors { code field message } } } }"""
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
FIRST = datetime(2026, 2, 1, tzinfo=UTC)  # the oldest an event may be dated, in March
GROUPINGS = [None, "description", "model", "region", "absent"]
UNIT = Decimal("0.00000001")


def events(team_id: str, count: int) -> list[dict[str, Any]]:
    """Events spread over February and March, some on the hour, some at month and day
    edges; descriptions and dimensions present or not."""
    rng = random.Random(20260310)
    span = int((NOW - FIRST).total_seconds())
    edges = [FIRST, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC) - UNIT_TIME]
    made = []
    for n in range(count):
        at = edges[n] if n < len(edges) else FIRST + timedelta(seconds=rng.randrange(span))
        if n % 7 == 0:
            at = at.replace(minute=0, second=0, microsecond=0)
        event: dict[str, Any] = {
            "teamId": team_id,
            "amount": str(rng.randrange(1, 9_000_000) * UNIT),
            "idempotencyKey": f"e{n}",
            "occurredAt": at.isoformat(),
        }
        if rng.random() < 0.7:
            event["description"] = rng.choice(["chat", "embed", "=cmd"])
        dims = {}
        if rng.random() < 0.8:
            dims["model"] = rng.choice(["m1", "m2", "m3"])
        if rng.random() < 0.4:
            dims["region"] = rng.choice(["eu", "us"])
        if dims:
            event["dimensions"] = dims
        made.append(event)
    return made


UNIT_TIME = timedelta(microseconds=1)


def truncate(instant: datetime, granularity: str) -> datetime:
    instant = instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if granularity == "HOUR":
        return instant
    instant = instant.replace(hour=0)
    return instant if granularity == "DAY" else instant.replace(day=1)


def step(start: datetime, granularity: str) -> datetime:
    if granularity == "HOUR":
        return start + timedelta(hours=1)
    if granularity == "DAY":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def expected(
    records: list[dict[str, Any]], start: datetime, end: datetime, granularity: str, by: str | None
) -> dict[tuple[str, str | None], tuple[Decimal, int, Decimal, Decimal]]:
    sums: dict[tuple[str, str | None], list[Any]] = defaultdict(
        lambda: [Decimal(0), 0, Decimal(0), Decimal(0)]
    )
    if by is None:
        bucket = truncate(start, granularity)
        while bucket < end:
            sums[(bucket.isoformat(), None)]  # every bucket, empty ones too
            bucket = step(bucket, granularity)
    for r in records:
        at = datetime.fromisoformat(r["occurredAt"])
        if not start <= at < end:
            continue
        if by is None:
            group = None
        elif by == "description":
            group = r["description"]
        else:
            group = (r["dimensions"] or {}).get(by)
        row = sums[(truncate(at, granularity).isoformat(), group)]
        credits = sum(Decimal(r[k]) for k in ("fromFree", "fromPromotional", "fromPrepaid"))
        row[0] += Decimal(r["amount"])
        row[1] += 1
        row[2] += credits
        row[3] += Decimal(r["invoiced"])
    return {key: (v[0], v[1], v[2], v[3]) for key, v in sums.items()}


def instants() -> st.SearchStrategy[datetime]:
    """Anywhere from late January to past now: on the hour, on a minute, or any microsecond."""
    low, high = FIRST - timedelta(days=5), NOW + timedelta(days=2)
    seconds = int((high - low).total_seconds())
    return st.one_of(
        st.integers(0, seconds // 3600).map(lambda h: low + timedelta(hours=h)),
        st.integers(0, seconds * 1_000_000).map(lambda us: low + timedelta(microseconds=us)),
    )


async def test_series_sums_equal_the_raw_records(api: Api, admin: Actor, operator: Actor) -> None:
    clock.freeze(NOW)
    await grant(api, operator, admin.team_id, "3.00")
    await set_limit(admin.team_id, "1000.00")
    made = events(admin.team_id, 240)
    for n in range(0, len(made), 60):
        data = await api.ok(BATCH, {"e": made[n : n + 60]}, operator.token)
        assert all(r["errors"] == [] for r in data["recordUsageBatch"]["results"]), data
    records = await all_records(api, admin, admin.team_id)
    assert len(records) == len(made)
    assert any(Decimal(r["invoiced"]) for r in records)  # both tiers are exercised
    loop = asyncio.get_running_loop()
    checked: list[int] = []

    async def series(variables: dict[str, Any]) -> dict[str, Any]:
        data = await api.ok(SERIES, variables, admin.token)
        found: dict[str, Any] = data["team"]["usage"]
        return found

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        a=instants(),
        b=instants(),
        granularity=st.sampled_from(["HOUR", "DAY", "MONTH"]),
        by=st.sampled_from(GROUPINGS),
    )
    def property_(a: datetime, b: datetime, granularity: str, by: str | None) -> None:
        if a == b:
            return
        start, end = min(a, b), max(a, b)
        if granularity == "HOUR" and end - start > timedelta(hours=1999):
            end = start + timedelta(hours=1999)
        variables = {
            "t": admin.team_id,
            "f": start.isoformat(),
            "to": end.isoformat(),
            "g": granularity,
            "by": by,
        }
        got = asyncio.run_coroutine_threadsafe(series(variables), loop).result(timeout=60)
        buckets = got["buckets"]
        starts = [b["start"] for b in buckets]
        assert starts == sorted(starts)  # oldest first
        actual = {
            (b["start"], b["group"]): (
                Decimal(b["amount"]),
                b["events"],
                Decimal(b["fromCredits"]),
                Decimal(b["invoiced"]),
            )
            for b in buckets
        }
        assert len(actual) == len(buckets)  # one bucket per (start, group)
        want = expected(records, start, end, granularity, by)
        assert actual == want
        assert Decimal(got["total"]) == sum((v[0] for v in want.values()), Decimal(0))
        assert got["events"] == sum(v[1] for v in want.values())
        checked.append(1)

    await loop.run_in_executor(None, property_)
    assert len(checked) >= 30
    await daily_rows_sum_the_hourly_ones(uuid.UUID(admin.team_id))


async def daily_rows_sum_the_hourly_ones(team_id: uuid.UUID) -> None:
    """Each daily rollup row is its day's hourly rows summed, and no day is missing."""
    fields = ("dimension", "value", "amount", "from_credits", "invoiced", "events")
    hourly = await UsageRollup.filter(team_id=team_id).values("hour", *fields)
    daily = await UsageDailyRollup.filter(team_id=team_id).values("day", *fields)
    want: dict[tuple[datetime, str, str], list[int]] = {}
    for row in hourly:
        key = (day_of(row["hour"]), row["dimension"], row["value"])
        sums = want.setdefault(key, [0, 0, 0, 0])
        for n, name in enumerate(fields[2:]):
            sums[n] += row[name]
    got = {
        (row["day"].astimezone(UTC), row["dimension"], row["value"]): [
            row[name] for name in fields[2:]
        ]
        for row in daily
    }
    assert len(got) == len(daily)
    assert got == want
    assert len(daily) < len(hourly)
