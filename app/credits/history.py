"""Usage history: series over time (from the hourly rollups), raw records newest first,
and the runway at the trailing week's burn (docs/usage-history.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits import dimensions, store
from app.credits.models import UsageRecord
from app.credits.store import (
    DESCRIPTION,
    USAGE_COLUMNS,
    WHOLE_HOUR,
    UsageRow,
    day_of,
    hour_of,
)
from app.kit.errors import DomainError, ErrorCode
from app.kit.pagination import decode_time_cursor, encode_time_cursor, page_size
from app.kit.sql import fetch_all, is_postgres


class Granularity(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


# A series has at most this many buckets per group (an hourly series: about 83 days).
MAX_BUCKETS = 2000
# And at most this many (bucket, group) rows in all: a key with many values over a long
# range is refused with a hint, rather than building a huge answer.
MAX_ROWS = 20_000
# The group name a series uses for the description (a dimension key never starts with "#").
DESCRIPTION_GROUP = "description"
RUNWAY_WINDOW = timedelta(days=7)


def _invalid(message: str, field_name: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, field_name)


def _utc(instant: datetime) -> datetime:
    """An instant in UTC (one without an offset is read as UTC)."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def bucket_start(instant: datetime, granularity: Granularity) -> datetime:
    """The start (UTC) of the hour, day or month that contains `instant`."""
    hour = hour_of(instant)
    if granularity is Granularity.HOUR:
        return hour
    day = hour.replace(hour=0)
    return day if granularity is Granularity.DAY else day.replace(day=1)


def next_bucket(start: datetime, granularity: Granularity) -> datetime:
    if granularity is Granularity.HOUR:
        return start + timedelta(hours=1)
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def bucket_starts(start: datetime, end: datetime, granularity: Granularity) -> list[datetime]:
    """Every bucket that meets [start, end), oldest first (at most MAX_BUCKETS + 1)."""
    starts: list[datetime] = []
    current = bucket_start(start, granularity)
    while current < end and len(starts) <= MAX_BUCKETS:
        starts.append(current)
        current = next_bucket(current, granularity)
    return starts


def grouping(group_by: str | None) -> str:
    """The rollup grouping (`usage_rollups.dimension`) of a `groupBy` argument."""
    if group_by is None:
        return WHOLE_HOUR
    if group_by == DESCRIPTION_GROUP:
        return DESCRIPTION
    if not dimensions.is_key(group_by):
        raise _invalid(
            'groupBy is "description" or a dimension key (1 to 64 of A-Z a-z 0-9 _ . -).',
            "groupBy",
        )
    return group_by


def check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _utc(start), _utc(end)
    if start >= end:
        raise _invalid("from must be before to.", "from")
    return start, end


@dataclass(slots=True)
class Sums:
    amount: int = 0
    from_credits: int = 0
    invoiced: int = 0
    events: int = 0

    def add(self, amount: int, from_credits: int, invoiced: int, events: int) -> None:
        self.amount += amount
        self.from_credits += from_credits
        self.invoiced += invoiced
        self.events += events

    def minus(self, other: Sums) -> Sums:
        return Sums(
            self.amount - other.amount,
            self.from_credits - other.from_credits,
            self.invoiced - other.invoiced,
            self.events - other.events,
        )


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    group: str | None
    sums: Sums


@dataclass(slots=True)
class Series:
    buckets: list[Bucket]
    total: Sums = field(default_factory=Sums)


def _conn() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


class _Tally:
    """Sums per bucket: the whole of each bucket, and each group's part of it."""

    def __init__(self) -> None:
        self.whole: dict[datetime, Sums] = {}
        self.groups: dict[tuple[datetime, str], Sums] = {}

    def add(self, start: datetime, group: str | None, values: Iterable[Any]) -> None:
        amount, credits, invoiced, events = (int(v) for v in values)
        if group is None:
            self.whole.setdefault(start, Sums()).add(amount, credits, invoiced, events)
        else:
            self.groups.setdefault((start, group), Sums()).add(amount, credits, invoiced, events)


def _whole_units(
    start: datetime, end: datetime, unit_of: Callable[[datetime], datetime], unit: timedelta
) -> tuple[datetime, datetime]:
    """The first and the end of the whole hours (or days) within [start, end)."""
    first = unit_of(start)
    if first < start:
        first += unit
    return first, unit_of(end)


@dataclass(frozen=True, slots=True)
class _Reader:
    """One series' reads: whose usage, which grouping, into which buckets."""

    conn: BaseDBAsyncClient
    tally: _Tally
    team_id: uuid.UUID
    dimension: str
    granularity: Granularity

    async def rollups(
        self, start: datetime, end: datetime, table: str = "usage_rollups", column: str = "hour"
    ) -> None:
        """Whole hours [start, end) from usage_rollups (or whole days from
        usage_daily_rollups: `table`, `column`); summed per bucket in SQL on PostgreSQL,
        per row on SQLite (then per bucket here)."""
        dimension, conn = self.dimension, self.conn
        wanted = [WHOLE_HOUR] if dimension == WHOLE_HOUR else [WHOLE_HOUR, dimension]
        sums = (
            'sum("amount") AS a, sum("from_credits") AS c, sum("invoiced") AS i, sum("events") AS n'
        )
        if is_postgres(conn):
            unit = self.granularity.value.lower()
            # int8, not numeric: asyncpg decodes numerics as Decimals, far slower. A team's
            # sum over 2,000 months stays far below 2^63 units.
            sums = ", ".join(
                f'sum("{name}")::int8 AS {alias}'
                for name, alias in (
                    ("amount", "a"),
                    ("from_credits", "c"),
                    ("invoiced", "i"),
                    ("events", "n"),
                )
            )
            # The hour as UTC wall time, truncated: cheaper than date_trunc's time zone form.
            sql = (
                f"SELECT date_trunc('{unit}', \"{column}\" AT TIME ZONE 'UTC') AS b, "
                f'"dimension", "value", {sums} '
                f'FROM "{table}" WHERE "team_id" = $1 AND "dimension" = ANY($2::varchar[]) '
                f'AND "{column}" >= $3 AND "{column}" < $4 GROUP BY 1, 2, 3'
            )
            rows = await fetch_all(conn, sql, [self.team_id, wanted, start, end])
        else:
            marks = ", ".join(f"${n}" for n in range(4, 4 + len(wanted)))
            sql = (
                f'SELECT "{column}" AS b, "dimension", "value", {sums} FROM "{table}" '
                f'WHERE "team_id" = $1 AND "{column}" >= $2 AND "{column}" < $3 '
                f'AND "dimension" IN ({marks}) GROUP BY 1, 2, 3'
            )
            rows = await fetch_all(conn, sql, [self.team_id, start, end, *wanted])
        for row in rows:
            instant = row["b"]
            if isinstance(instant, str):
                instant = datetime.fromisoformat(instant)
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=UTC)
            group = None if row["dimension"] == WHOLE_HOUR else row["value"]
            values = (row["a"], row["c"], row["i"], row["n"])
            self.tally.add(bucket_start(instant, self.granularity), group, values)

    async def whole_hours(self, start: datetime, end: datetime) -> None:
        """Whole hours [start, end): the whole days among them from the daily rollups when
        the buckets are days or months, the hours at either side from the hourly ones."""
        first_day, last_day = _whole_units(start, end, day_of, timedelta(days=1))
        if self.granularity is Granularity.HOUR or first_day >= last_day:
            await self.rollups(start, end)
            return
        await self.rollups(first_day, last_day, "usage_daily_rollups", "day")
        if start < first_day:
            await self.rollups(start, first_day)
        if last_day < end:
            await self.rollups(last_day, end)

    async def raw(self, start: datetime, end: datetime) -> None:
        """Records in [start, end) (less than an hour at either edge of a series)."""
        sql = (
            'SELECT "amount", "from_free" + "from_promotional" + "from_prepaid" AS c, '
            '"invoiced", "description", "dimensions", "occurred_at" FROM "usage_records" '
            'WHERE "team_id" = $1 AND "occurred_at" >= $2 AND "occurred_at" < $3'
        )
        for row in await fetch_all(self.conn, sql, [self.team_id, start, end]):
            occurred_at = store.datetime_of(UsageRecord, "occurred_at", row["occurred_at"])
            bucket = bucket_start(occurred_at, self.granularity)
            values = (int(row["amount"]), int(row["c"]), int(row["invoiced"]), 1)
            self.tally.add(bucket, None, values)
            pairs = store.dimensions_of(row["dimensions"])
            group = _group_of(row["description"], pairs, self.dimension)
            if group is not None:
                self.tally.add(bucket, group, values)


def _group_of(
    description: str | None, pairs: Mapping[str, str] | None, dimension: str
) -> str | None:
    if dimension == WHOLE_HOUR:
        return None
    if dimension == DESCRIPTION:
        return description
    return (pairs or {}).get(dimension)


async def usage_series(
    team_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    group_by: str | None,
) -> Series:
    """Usage in [start, end) per bucket (and group), oldest first: whole hours from the
    rollups, the part of an hour at either edge from the records."""
    start, end = check_range(start, end)
    dimension = grouping(group_by)
    starts = bucket_starts(start, end, granularity)
    if len(starts) > MAX_BUCKETS:
        raise _invalid(
            f"At most {MAX_BUCKETS} buckets: a shorter range or a coarser granularity.", "to"
        )
    tally = _Tally()
    reader = _Reader(_conn(), tally, team_id, dimension, granularity)
    first_hour, last_hour = _whole_units(start, end, hour_of, timedelta(hours=1))
    if first_hour < last_hour:
        await reader.whole_hours(first_hour, last_hour)
        if start < first_hour:
            await reader.raw(start, first_hour)
        if last_hour < end:
            await reader.raw(last_hour, end)
    else:
        await reader.raw(start, end)
    return _series(tally, starts, grouped=dimension != WHOLE_HOUR)


def _series(tally: _Tally, starts: list[datetime], *, grouped: bool) -> Series:
    total = Sums()
    for sums in tally.whole.values():
        total.add(sums.amount, sums.from_credits, sums.invoiced, sums.events)
    if not grouped:
        # Every bucket, empty ones included: a chart needs no gaps filled.
        return Series([Bucket(s, None, tally.whole.get(s, Sums())) for s in starts], total)
    by_start: dict[datetime, list[Bucket]] = {}
    for (start, group), sums in tally.groups.items():
        by_start.setdefault(start, []).append(Bucket(start, group, sums))
    buckets: list[Bucket] = []
    for start in starts:
        parts = sorted(by_start.get(start, []), key=lambda b: b.group or "")
        whole = tally.whole.get(start)
        if whole is not None:
            # Events without the key (or description) are the group null: what is left.
            rest = whole
            for part in parts:
                rest = rest.minus(part.sums)
            if rest.events:
                parts.append(Bucket(start, None, rest))
        buckets.extend(parts)
        if len(buckets) > MAX_ROWS:
            raise _invalid(
                f"More than {MAX_ROWS} buckets and groups: a shorter range, a coarser "
                "granularity or another groupBy.",
                "groupBy",
            )
    return Series(buckets, total)


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[UsageRow]
    cursors: list[str]
    has_next_page: bool


def record_cursor(record: UsageRow) -> str:
    return encode_time_cursor(record.occurred_at, record.id)


Range = tuple[datetime | None, datetime | None]


def _bounds(start: datetime | None, end: datetime | None) -> Range:
    start = _utc(start) if start is not None else None
    end = _utc(end) if end is not None else None
    if start is not None and end is not None and start >= end:
        raise _invalid("from must be before to.", "from")
    return start, end


async def usage_records_page(
    team_id: uuid.UUID,
    first: int | None,
    after: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> RecordPage:
    """A page of the team's usage records, newest first (by occurred_at, then id)."""
    size = page_size(first)
    cursor = decode_time_cursor(after) if after else None
    start, end = _bounds(start, end)
    rows = await _records(_conn(), team_id, size + 1, cursor, start, end)
    page = rows[:size]
    return RecordPage(page, [record_cursor(r) for r in page], len(rows) > size)


async def _records(
    conn: BaseDBAsyncClient,
    team_id: uuid.UUID,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
    start: datetime | None,
    end: datetime | None,
) -> list[UsageRow]:
    columns = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)
    where = ['"team_id" = $1']
    params: list[object] = [team_id]
    if start is not None:
        params.append(start)
        where.append(f'"occurred_at" >= ${len(params)}')
    if end is not None:
        params.append(end)
        where.append(f'"occurred_at" < ${len(params)}')
    if before is not None:
        params += [_utc(before[0]), before[1]]
        at, key = len(params) - 1, len(params)
        # `occurred_at <= x` on its own, so it bounds the index range (an OR would only
        # filter it, and each page would scan from the newest record down).
        where.append(f'"occurred_at" <= ${at} AND ("occurred_at" < ${at} OR "id" < ${key})')
    sql = (
        f'SELECT {columns} FROM "usage_records" WHERE {" AND ".join(where)} '
        f'ORDER BY "occurred_at" DESC, "id" DESC LIMIT {int(limit)}'
    )
    return [store.usage_row_of(row) for row in await fetch_all(conn, sql, params)]


async def stream_records(
    team_id: uuid.UUID, start: datetime, end: datetime, page: int = 2000
) -> AsyncIterator[list[UsageRow]]:
    """All records in [start, end), newest first, a keyset page at a time (an export
    never holds more than one page)."""
    conn = _conn()
    before: tuple[datetime, uuid.UUID] | None = None
    while True:
        rows = await _records(conn, team_id, page, before, start, end)
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        before = (rows[-1].occurred_at, rows[-1].id)


# --- runway -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Runway:
    daily_burn: int  # units a day, the trailing week's average (rounded down)
    days_left: float | None  # until `available` is used up; None when nothing burns
    exhausts_at: datetime | None
    credits_days_left: float | None  # until the credits alone are used up
    credits_exhaust_at: datetime | None


async def trailing_burn(team_id: uuid.UUID, now: datetime) -> int:
    """Usage in the last seven days (the current hour and the 167 before it)."""
    current = hour_of(now)
    since = current - RUNWAY_WINDOW + timedelta(hours=1)
    row = await fetch_all(
        _conn(),
        'SELECT sum("amount") AS a FROM "usage_rollups" WHERE "team_id" = $1 '
        'AND "dimension" = $2 AND "hour" >= $3 AND "hour" <= $4',
        [team_id, WHOLE_HOUR, since, current],
    )
    return int(row[0]["a"] or 0) if row else 0


def runway_of(burn_week: int, credits: int, available: int, now: datetime) -> Runway:
    """The runway at a week's burn: `credits` (not held) run out first, then `available`
    (credits and the month's invoiced headroom, less holds)."""
    daily = burn_week // 7
    if daily <= 0:
        return Runway(0, None, None, None, None)

    def left(amount: int) -> tuple[float, datetime]:
        days = max(amount, 0) / daily
        # Whole seconds, computed in integers: no float touches the amounts' arithmetic.
        seconds = max(amount, 0) * 86_400 // daily
        return days, now + timedelta(seconds=seconds)

    days, at = left(available)
    credit_days, credits_at = left(credits)
    return Runway(daily, days, at, credit_days, credits_at)


def csv_cell(value: str) -> str:
    """A text cell safe to open in a spreadsheet: one starting with = + - @ (or a tab or
    carriage return) is prefixed with ' so it is not read as a formula (OWASP)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value
