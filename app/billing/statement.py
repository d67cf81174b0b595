"""The team's statement: every ledger entry, newest first, named for what moved the
money (a purchase, an auto top-up, a promo code, a refund...), with the balance after
it. The balance is derived, not stored (docs/usage-history.md): the balance after an
entry is the sum of the team's entries up to it, read as the grants' remaining total
less the entries after it, in one statement so that both come from one snapshot."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits import service as credits
from app.credits.models import CreditKind, LedgerEntry, LedgerKind
from app.credits.store import account_balances, datetime_of
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.pagination import decode_cursor, encode_cursor, page_size
from app.kit.sql import fetch_all


class EntryKind(StrEnum):
    GRANT = "GRANT"  # free or promotional credits given by an operator
    PURCHASE = "PURCHASE"
    PROMO_CODE = "PROMO_CODE"
    AUTO_TOP_UP = "AUTO_TOP_UP"
    USAGE = "USAGE"
    EXPIRY = "EXPIRY"
    REFUND = "REFUND"
    DISPUTE = "DISPUTE"  # withdrawn for a dispute, or for paying a dispute's shortfall
    ADJUSTMENT = "ADJUSTMENT"  # prepaid credits not bought: a won dispute's, an operator's


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: EntryKind
    amount: int  # signed: + credits added, - credits taken
    balance_after: int
    description: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EntryPage:
    entries: list[Entry]
    cursors: list[str]
    has_next_page: bool


def _kind(row: dict[str, Any]) -> EntryKind:
    kind = LedgerKind(row["kind"])
    if kind is LedgerKind.USAGE:
        return EntryKind.USAGE
    if kind is LedgerKind.EXPIRY:
        return EntryKind.EXPIRY
    has_purchase = row["purchase_id"] is not None
    if kind is LedgerKind.WITHDRAWAL:
        # A refund's withdrawal comes from a purchase nothing disputed; a dispute's, or
        # a later purchase paying an earlier dispute's shortfall, is a dispute.
        if has_purchase and int(row["refunded_amount"]) > 0 and not int(row["disputed_amount"]):
            return EntryKind.REFUND
        return EntryKind.DISPUTE
    grant_kind = CreditKind(row["grant_kind"])
    if grant_kind is CreditKind.PREPAID:
        if not has_purchase:
            return EntryKind.ADJUSTMENT
        return EntryKind.AUTO_TOP_UP if row["reason"] == "auto_top_up" else EntryKind.PURCHASE
    return EntryKind.PROMO_CODE if row["promo"] else EntryKind.GRANT


_PAGE_SQL = (
    'SELECT e."id", e."kind", e."amount", e."created_at", g."kind" AS grant_kind, '
    'g."description" AS grant_description, u."description" AS usage_description, '
    'p."id" AS purchase_id, p."reason", p."refunded_amount", p."disputed_amount", '
    'EXISTS (SELECT 1 FROM "promo_redemptions" AS r '
    'WHERE r."team_id" = e."team_id" AND r."grant_id" = e."grant_id") AS promo '
    # Every join on the team too: the keys are (team_id, id), and on Citus a join on the
    # distribution column stays on the team's shard.
    'FROM "ledger_entries" AS e '
    'JOIN "credit_grants" AS g ON g."team_id" = e."team_id" AND g."id" = e."grant_id" '
    'LEFT JOIN "usage_records" AS u ON u."team_id" = e."team_id" AND u."id" = e."usage_id" '
    'LEFT JOIN "purchases" AS p ON p."team_id" = e."team_id" AND p."grant_id" = e."grant_id" '
    'WHERE {where} ORDER BY e."id" DESC LIMIT {limit}'
)

# The balance after the page's newest entry (first row, id null), then every entry of
# the team from the page's oldest to its newest (so entries the time filter left out
# between them still count): one statement, one snapshot.
_BALANCE_SQL = (
    'SELECT NULL AS "id", (SELECT COALESCE(SUM("remaining"), 0) FROM "credit_grants" '
    'WHERE "team_id" = $1) - (SELECT COALESCE(SUM("amount"), 0) FROM "ledger_entries" '
    'WHERE "team_id" = $1 AND "id" > $3) AS "amount" '
    'UNION ALL SELECT "id", "amount" FROM "ledger_entries" '
    'WHERE "team_id" = $1 AND "id" >= $2 AND "id" <= $3'
)


def _conn() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


async def _expire_due(conn: BaseDBAsyncClient, team_id: uuid.UUID) -> None:
    """Credits stop counting at their expiry instant, but the EXPIRY entry is written by
    the next locked write (or the sweeper): written now when due, so the statement's
    newest balance is the credits total a reader sees."""
    account = await account_balances(conn, team_id)
    due = account.next_expiry_at if account is not None else None
    if due is not None and due <= clock.now():
        await credits.expire_due(team_id)


async def _page_rows(
    conn: BaseDBAsyncClient,
    team_id: uuid.UUID,
    limit: int,
    before: int | None,
    start: datetime | None,
    end: datetime | None,
) -> list[dict[str, Any]]:
    where = ['e."team_id" = $1']
    params: list[object] = [team_id]
    if before is not None:
        params.append(before)
        where.append(f'e."id" < ${len(params)}')
    if start is not None:
        params.append(start)
        where.append(f'e."created_at" >= ${len(params)}')
    if end is not None:
        params.append(end)
        where.append(f'e."created_at" < ${len(params)}')
    sql = _PAGE_SQL.format(where=" AND ".join(where), limit=int(limit))
    return await fetch_all(conn, sql, params)


def _entries(rows: list[dict[str, Any]], balances: dict[int, int]) -> list[Entry]:
    return [
        Entry(
            id=int(row["id"]),
            kind=_kind(row),
            amount=int(row["amount"]),
            balance_after=balances[int(row["id"])],
            description=row["usage_description"]
            if row["kind"] == LedgerKind.USAGE.value
            else row["grant_description"],
            created_at=datetime_of(LedgerEntry, "created_at", row["created_at"]),
        )
        for row in rows
    ]


async def _balances_from_total(
    conn: BaseDBAsyncClient, team_id: uuid.UUID, oldest: int, newest: int
) -> dict[int, int]:
    """The balance after every entry of the team with oldest <= id <= newest."""
    rows = await fetch_all(conn, _BALANCE_SQL, [team_id, oldest, newest])
    head = next(r for r in rows if r["id"] is None)
    span = sorted((int(r["id"]), int(r["amount"])) for r in rows if r["id"] is not None)
    return _walk_down(int(head["amount"]), span)


def _walk_down(balance: int, span: list[tuple[int, int]]) -> dict[int, int]:
    """From the balance after the newest entry of `span` (ascending), each entry's."""
    balances: dict[int, int] = {}
    for entry_id, amount in reversed(span):
        balances[entry_id] = balance
        balance -= amount
    return balances


def _time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Range = tuple[datetime | None, datetime | None]


def _bounds(start: datetime | None, end: datetime | None) -> Range:
    start, end = _time(start), _time(end)
    if start is not None and end is not None and start >= end:
        raise DomainError(ErrorCode.INVALID_INPUT, "from must be before to.", "from")
    return start, end


def entry_cursor(entry: Entry) -> str:
    return encode_cursor("ledger", entry.id)


def _decode(after: str) -> int:
    tag, raw = decode_cursor(after, 2)
    if tag != "ledger" or not raw.isdigit() or len(raw) > 19:
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a cursor of this list.", "after")
    return int(raw)


async def ledger_page(
    team_id: uuid.UUID,
    first: int | None,
    after: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> EntryPage:
    """A page of the team's statement, newest first."""
    size = page_size(first)
    before = _decode(after) if after else None
    start, end = _bounds(start, end)
    conn = _conn()
    await _expire_due(conn, team_id)
    rows = await _page_rows(conn, team_id, size + 1, before, start, end)
    page = rows[:size]
    if not page:
        return EntryPage([], [], False)
    ids = [int(r["id"]) for r in page]
    balances = await _balances_from_total(conn, team_id, min(ids), max(ids))
    entries = _entries(page, balances)
    return EntryPage(entries, [entry_cursor(e) for e in entries], len(rows) > size)


async def stream_entries(
    team_id: uuid.UUID, start: datetime, end: datetime, page: int = 2000
) -> AsyncIterator[list[Entry]]:
    """Every entry in [start, end), newest first, a page at a time. The balance is read
    once, for the newest page; older pages continue it downwards from what the team's
    entries between the pages add up to (entries never change once written)."""
    conn = _conn()
    await _expire_due(conn, team_id)
    before: int | None = None
    balance: int | None = None  # the balance after the entry just below `before`
    while True:
        rows = await _page_rows(conn, team_id, page, before, start, end)
        if not rows:
            return
        ids = [int(r["id"]) for r in rows]
        if balance is None or before is None:
            balances = await _balances_from_total(conn, team_id, min(ids), max(ids))
        else:
            span_rows = await fetch_all(
                conn,
                'SELECT "id", "amount" FROM "ledger_entries" WHERE "team_id" = $1 '
                'AND "id" >= $2 AND "id" < $3',
                [team_id, min(ids), before],
            )
            span = sorted((int(r["id"]), int(r["amount"])) for r in span_rows)
            balances = _walk_down(balance, span)
        entries = _entries(rows, balances)
        yield entries
        if len(rows) < page:
            return
        oldest = entries[-1]
        before, balance = oldest.id, oldest.balance_after - oldest.amount
