"""Hooks of the credit programs (alerts, auto top-up) in the money paths.

The usage transaction calls `after_usage` with the teams' rows still locked: it
compares each team's credits and invoiced total before and after, from values
already in memory, and only on a threshold crossing does it write (an alert row,
the auto top-up intent on the account row). What must wait for the commit is left
on the transaction: alerts push themselves after it, and a `TopUpDue` announcement is
what billing acts on.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from app.credits import alerts, rules
from app.credits.models import AlertKind, CreditAccount, InvoicedPeriod
from app.credits.store import AccountRow
from app.events import outbox
from app.events.commit import Transaction
from app.kit import clock
from app.kit.money import dollars_text, format_units


@dataclass(frozen=True, slots=True)
class TopUpDue:
    """Announced after a commit that set a team's auto top-up intent (billing charges it)."""

    team_id: uuid.UUID


# The locked account row (the usage path's dataclass) or the model (auto top-up's steps).
Account = AccountRow | CreditAccount


class Locked(Protocol):
    """What `after_usage` needs of a locked account (`credits.service.LockedAccount`)."""

    @property
    def account(self) -> Account: ...

    @property
    def available(self) -> int: ...

    @property
    def changed(self) -> bool: ...


def cached_total(account: Account) -> int:
    """Credits as of the row's last write (before this transaction's draws and expiries)."""
    return int(account.free + account.promotional + account.prepaid)


async def after_usage(
    tx: Transaction,
    locked: Mapping[uuid.UUID, Locked],
    periods: Mapping[tuple[uuid.UUID, str], InvoicedPeriod],
    invoiced_before: Mapping[tuple[uuid.UUID, str], int],
    refused: Collection[uuid.UUID] = (),
) -> None:
    """Crossings caused by one usage transaction; call before its accounts are flushed.

    O(1) per changed team from values in memory; queries only on a crossing. `refused`:
    teams with an event refused for want of money (a candidate for `team.blocked`).
    """
    for account in locked.values():
        if account.changed:
            before = cached_total(account.account)
            await credits_moved(tx, account.account, before, account.available, periods=periods)
    moved: list[uuid.UUID] = []
    for (team_id, period), row in periods.items():
        start = invoiced_before.get((team_id, period))
        if start is not None and row.amount > start:
            await _invoiced_moved(tx, locked[team_id].account, period, start, row.amount)
            moved.append(team_id)
    if outbox.enabled and (refused or moved):
        # A team can no longer be served once neither credits nor headroom remain: checked
        # only for teams that reached the invoiced tier or were refused, and only while not
        # already blocked (then mostly from memory: the month's row is loaded).
        for team_id in {*refused, *moved}:
            entry = locked[team_id]
            state = entry.account
            if state.blocked or entry.available > 0:
                continue
            if not await _has_headroom(tx, state, periods):
                await mark_blocked(tx, state)


async def mark_blocked(tx: Transaction, account: Account) -> None:
    """Tells `team.blocked` once per transition (the flag on the locked row remembers)."""
    if account.blocked or not outbox.enabled:
        return
    account.blocked = True
    team_id = account.team_id
    await CreditAccount.filter(team_id=team_id).using_db(tx.conn).update(blocked=True)
    status = rules.billing_status(0, int(account.invoiced_limit), 0)
    data = {"teamId": str(team_id), "status": status.value}
    await outbox.emit(tx, "team.blocked", data, team_id=team_id)


async def mark_unblocked(tx: Transaction, account: Account) -> None:
    """Tells `team.unblocked` once per transition; the caller writes the row (its flag)."""
    account.blocked = False
    team_id = account.team_id
    data = {"teamId": str(team_id), "status": rules.BillingStatus.ACTIVE.value}
    await outbox.emit(tx, "team.unblocked", data, team_id=team_id)


@functools.lru_cache(maxsize=256)
def parse_thresholds(text: str) -> tuple[int, ...]:
    """The stored "80,100" as (80, 100): sorted, distinct (read on the usage path)."""
    return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))


def format_thresholds(percents: Collection[int]) -> str:
    return ",".join(str(p) for p in sorted(set(percents)))


async def credits_moved(
    tx: Transaction,
    account: Account,
    before: int,
    after: int,
    *,
    periods: Mapping[tuple[uuid.UUID, str], InvoicedPeriod] | None = None,
) -> None:
    """Credits went from `before` to `after` (usage or expiry) with the row locked.

    Below the threshold: one CREDITS_LOW alert and, when enabled, one top-up intent;
    at zero with no invoiced headroom: one CREDITS_EXHAUSTED alert.
    """
    if after >= before:
        return
    conn = tx.conn
    team_id = account.team_id
    threshold = account.auto_top_up_threshold
    # The alert's own threshold when the team set one (notification settings).
    low = account.low_balance_threshold if account.low_balance_threshold is not None else threshold
    if low is not None and before >= low > after:
        # funding_seq changes whenever credits are added: it names this crossing.
        await alerts.raise_alert(
            conn,
            team_id,
            AlertKind.CREDITS_LOW,
            f"Credits fell below {dollars_text(low)} (now {dollars_text(after)}).",
            key=f"low:{account.funding_seq}",
            data={"threshold": format_units(low), "credits": format_units(after)},
        )
    if threshold is not None and before >= threshold > after and wants_top_up(account):
        account.auto_top_up_pending = True
        tx.announce(TopUpDue(team_id))
    if after == 0 and not await _has_headroom(tx, account, periods):
        await alerts.raise_alert(
            conn,
            team_id,
            AlertKind.CREDITS_EXHAUSTED,
            "Credits are used up and there is no invoiced headroom: usage is refused.",
            key=f"out:{account.funding_seq}",
        )
        await mark_blocked(tx, account)


def wants_top_up(account: Account) -> bool:
    """Enabled, not paused, and none in flight (the row is locked by the caller)."""
    return (
        account.auto_top_up_enabled
        and account.auto_top_up_paused_reason is None
        and not account.auto_top_up_pending
    )


async def _has_headroom(
    tx: Transaction,
    account: Account,
    periods: Mapping[tuple[uuid.UUID, str], InvoicedPeriod] | None,
) -> bool:
    if account.invoiced_limit == 0 or account.invoicing_suspended:
        return False  # no need to read the month's total
    team_id = account.team_id
    period = clock.period_of(clock.now())
    row = (periods or {}).get((team_id, period))
    if row is None:
        query = InvoicedPeriod.filter(team_id=team_id, period=period).using_db(tx.conn)
        row = await query.first()
    used = row.amount if row is not None else 0
    headroom = rules.invoiced_headroom(account.invoiced_limit, used, account.invoicing_suspended)
    return headroom > 0


async def _invoiced_moved(
    tx: Transaction,
    account: Account,
    period: str,
    before: int,
    after: int,
) -> None:
    """The team's thresholds (default 80% and 100%) as crossings of the current limit.

    Each (limit, percent) alerts once a month: raising the limit re-arms every threshold
    (a new limit is a new key), and the message names the limit crossed. 100% and above
    are INVOICED_LIMIT_100, lower thresholds INVOICED_LIMIT_80 (the warning kind).
    """
    limit = int(account.invoiced_limit)
    if limit <= 0:
        return
    team_id = account.team_id
    for percent in parse_thresholds(account.alert_thresholds):
        # Integer comparison: before < limit * percent / 100 <= after.
        if before * 100 < limit * percent <= after * 100:
            kind = AlertKind.INVOICED_LIMIT_100 if percent >= 100 else AlertKind.INVOICED_LIMIT_80
            await alerts.raise_alert(
                tx.conn,
                team_id,
                kind,
                f"Invoiced usage for {clock.month_text(period)} reached {percent}% of the "
                f"{dollars_text(limit)} monthly spending limit ({dollars_text(after)} so far).",
                period=period,
                key=f"limit:{limit}:{percent}",
                data={
                    "percent": percent,
                    "limit": format_units(limit),
                    "invoiced": format_units(after),
                },
            )
