"""Usage history in GraphQL: `Team.usage` (series), `Team.usageRecords`, `Team.ledger`
(the statement), `Team.exportUrl` and `Credits.runway`; members read them all."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from enum import Enum

import strawberry

from app.billing import statement
from app.credits import history
from app.credits.history import Granularity as DomainGranularity
from app.graphql.context import Info
from app.graphql.scalars import Decimal
from app.graphql.types import PageInfo, UsageRecord, money
from app.invoices import links
from app.kit import origin
from app.kit.errors import DomainError, ErrorCode

strawberry.enum(DomainGranularity, name="Granularity")
Granularity = DomainGranularity
strawberry.enum(statement.EntryKind, name="LedgerEntryKind")
LedgerEntryKind = statement.EntryKind

# The longest range one export link covers.
MAX_EXPORT_RANGE = timedelta(days=3 * 366)


@strawberry.enum
class ExportKind(Enum):
    USAGE = "usage"
    LEDGER = "ledger"


@strawberry.type(description="Usage in one bucket (and group): amount = fromCredits + invoiced.")
class UsageBucket:
    start: datetime = strawberry.field(description="the bucket's start (UTC)")
    group: str | None = strawberry.field(
        description="the description or dimension value; null: events without it (or no groupBy)"
    )
    amount: Decimal
    events: int
    from_credits: Decimal
    invoiced: Decimal

    @classmethod
    def of(cls, bucket: history.Bucket) -> UsageBucket:
        sums = bucket.sums
        return cls(
            start=bucket.start,
            group=bucket.group,
            amount=money(sums.amount),
            events=sums.events,
            from_credits=money(sums.from_credits),
            invoiced=money(sums.invoiced),
        )


@strawberry.type
class UsageSeries:
    buckets: list[UsageBucket]
    total: Decimal
    events: int
    from_credits: Decimal
    invoiced: Decimal

    @classmethod
    def of(cls, series: history.Series) -> UsageSeries:
        return cls(
            buckets=[UsageBucket.of(b) for b in series.buckets],
            total=money(series.total.amount),
            events=series.total.events,
            from_credits=money(series.total.from_credits),
            invoiced=money(series.total.invoiced),
        )


@strawberry.type
class UsageRecordEdge:
    node: UsageRecord
    cursor: str


@strawberry.type
class UsageRecordConnection:
    edges: list[UsageRecordEdge]
    page_info: PageInfo


@strawberry.type(description="One money movement: amount is signed (+ added, - taken).")
class LedgerEntry:
    entry: strawberry.Private[statement.Entry]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.entry.id))

    @strawberry.field
    def kind(self) -> LedgerEntryKind:
        return self.entry.kind

    @strawberry.field
    def amount(self) -> Decimal:
        return money(self.entry.amount)

    @strawberry.field(description="the credits total (free + promotional + prepaid) after it")
    def balance_after(self) -> Decimal:
        return money(self.entry.balance_after)

    @strawberry.field
    def description(self) -> str | None:
        return self.entry.description

    @strawberry.field
    def created_at(self) -> datetime:
        return self.entry.created_at


@strawberry.type
class LedgerEntryEdge:
    node: LedgerEntry
    cursor: str


@strawberry.type
class LedgerEntryConnection:
    edges: list[LedgerEntryEdge]
    page_info: PageInfo


# --- resolvers (called from app.graphql.team.Team and app.graphql.types.Credits) --------------


async def team_usage(
    team_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    group_by: str | None,
) -> UsageSeries:
    series = await history.usage_series(team_id, start, end, granularity, group_by)
    return UsageSeries.of(series)


async def team_usage_records(
    team_id: uuid.UUID,
    first: int | None,
    after: str | None,
    start: datetime | None,
    end: datetime | None,
) -> UsageRecordConnection:
    page = await history.usage_records_page(team_id, first, after, start, end)
    edges = [
        UsageRecordEdge(node=UsageRecord.of(r), cursor=c)
        for r, c in zip(page.records, page.cursors, strict=True)
    ]
    end_cursor = edges[-1].cursor if edges else None
    return UsageRecordConnection(
        edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end_cursor)
    )


async def team_ledger(
    team_id: uuid.UUID,
    first: int | None,
    after: str | None,
    start: datetime | None,
    end: datetime | None,
) -> LedgerEntryConnection:
    page = await statement.ledger_page(team_id, first, after, start, end)
    edges = [
        LedgerEntryEdge(node=LedgerEntry(entry=e), cursor=c)
        for e, c in zip(page.entries, page.cursors, strict=True)
    ]
    end_cursor = edges[-1].cursor if edges else None
    return LedgerEntryConnection(
        edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end_cursor)
    )


async def team_export_url(
    info: Info, team_id: uuid.UUID, kind: ExportKind, start: datetime, end: datetime
) -> str:
    start, end = history.check_range(start, end)
    if end - start > MAX_EXPORT_RANGE:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "An export covers at most 3 years: export in parts.", "to"
        )
    settings = info.context.settings
    viewer = await info.context.viewer()
    member = None if viewer.is_operator else viewer.user.id
    base = origin.public_base(settings.public_url, info.context.request, settings.trusted_proxies)
    # Whole seconds in the link: from rounded down, to rounded up, so nothing asked is cut.
    first, last = math.floor(start.timestamp()), math.ceil(end.timestamp())
    return links.export_url(settings, base, team_id, kind.value, first, last, member)
