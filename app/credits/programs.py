"""Hooks of the credit programs in the money paths, and the periodic sweeper.

The usage transaction calls `after_usage` with the teams' rows still locked: it
compares each team's credits and invoiced total before and after, from values
already in memory, and only on a threshold crossing does it write (an alert row,
the auto top-up intent on the account row). What must wait for the commit
(pushing alerts, charging the card) is registered on the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits import alerts
from app.credits.models import AlertKind, CreditAccount, InvoicedPeriod
from app.credits.store import AccountRow
from app.events.commit import Transaction
from app.kit import clock
from app.kit.money import format_units

if TYPE_CHECKING:
    from app.credits.service import LockedAccount

log = structlog.get_logger(__name__)

SWEEP_INTERVAL = timedelta(seconds=30)


async def _start_top_up(team_id: uuid.UUID) -> None:
    """Starts the team's pending top-up (registered to run after the commit)."""
    from app.credits import auto_top_up  # it imports the service, which imports us

    auto_top_up.schedule(team_id)


def cached_total(account: CreditAccount | AccountRow) -> int:
    """Credits as of the row's last write (before this transaction's draws and expiries)."""
    return int(account.free + account.promotional + account.prepaid)


async def after_usage(
    tx: Transaction,
    locked: Mapping[uuid.UUID, LockedAccount],
    periods: Mapping[tuple[uuid.UUID, str], InvoicedPeriod],
    invoiced_before: Mapping[tuple[uuid.UUID, str], int],
) -> None:
    """Crossings caused by one usage transaction; call before its accounts are flushed.

    O(1) per changed team from values in memory; queries only on a crossing.
    """
    for account in locked.values():
        if account.changed:
            before = cached_total(account.account)
            await credits_moved(tx, account.account, before, account.available, periods=periods)
    for (team_id, period), row in periods.items():
        start = invoiced_before.get((team_id, period))
        if start is not None and row.amount > start:
            await _invoiced_moved(tx.conn, locked[team_id].account, period, start, row.amount)


async def credits_moved(
    tx: Transaction,
    account: AccountRow,
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
    if threshold is not None and before >= threshold > after:
        # funding_seq changes whenever credits are added: it names this crossing.
        await alerts.raise_alert(
            conn,
            team_id,
            AlertKind.CREDITS_LOW,
            f"Credits fell below {format_units(threshold)} (now {format_units(after)}).",
            key=f"low:{account.funding_seq}",
        )
        if wants_top_up(account):
            account.auto_top_up_pending = True
            tx.after(functools.partial(_start_top_up, team_id))
    if after == 0 and not await _has_headroom(conn, account, periods):
        await alerts.raise_alert(
            conn,
            team_id,
            AlertKind.CREDITS_EXHAUSTED,
            "Credits are used up and there is no invoiced headroom: usage is refused.",
            key=f"out:{account.funding_seq}",
        )


def wants_top_up(account: CreditAccount | AccountRow) -> bool:
    """Enabled, not paused, and none in flight (the row is locked by the caller)."""
    return (
        account.auto_top_up_enabled
        and account.auto_top_up_paused_reason is None
        and not account.auto_top_up_pending
    )


async def _has_headroom(
    conn: BaseDBAsyncClient,
    account: AccountRow,
    periods: Mapping[tuple[uuid.UUID, str], InvoicedPeriod] | None,
) -> bool:
    if account.invoiced_limit == 0 or account.invoicing_suspended:
        return False
    team_id = account.team_id
    period = clock.period_of(clock.now())
    row = (periods or {}).get((team_id, period))
    if row is None:
        row = await InvoicedPeriod.filter(team_id=team_id, period=period).using_db(conn).first()
    used = row.amount if row is not None else 0
    return bool(account.invoiced_limit > used)


async def _invoiced_moved(
    conn: BaseDBAsyncClient,
    account: AccountRow,
    period: str,
    before: int,
    after: int,
) -> None:
    """80% and 100% of the invoiced limit: once each per month (the period is the key)."""
    limit = account.invoiced_limit
    if limit <= 0:
        return
    team_id = account.team_id
    for kind, percent in ((AlertKind.INVOICED_LIMIT_80, 80), (AlertKind.INVOICED_LIMIT_100, 100)):
        # Integer comparison: before < limit * percent / 100 <= after.
        if before * 100 < limit * percent <= after * 100:
            await alerts.raise_alert(
                conn,
                team_id,
                kind,
                f"Invoiced usage for {period} reached {percent}% of the "
                f"{format_units(limit)} spending limit ({format_units(after)}).",
                period=period,
            )


# --- the sweeper ----------------------------------------------------------------------------


async def sweep_once() -> int:
    """Expires due grants of every team, resumes stalled top-ups and prunes the throttle.

    Returns the number of teams whose credits expired.
    """
    from app.credits import auto_top_up, promo, service

    expired = await service.expire_all_due()
    await auto_top_up.resume_stalled()
    await promo.prune_failures()
    return expired


async def next_wake(now: datetime) -> float:
    """Seconds until the next grant expires, at most the sweep interval."""
    upcoming = (
        await CreditAccount.filter(next_expiry_at__isnull=False).order_by("next_expiry_at").first()
    )
    wait = SWEEP_INTERVAL.total_seconds()
    if upcoming is not None and upcoming.next_expiry_at is not None:
        until = (upcoming.next_expiry_at - now).total_seconds()
        wait = min(wait, max(until, 0.0) + 0.05)
    return wait


async def run_sweeper() -> None:
    """Sweeps until cancelled, waking at each grant's expiry so balances drop on time."""
    while True:
        try:
            await sweep_once()
            wait = await next_wake(clock.now())
        except asyncio.CancelledError:
            raise
        except Exception:  # the sweeper must outlive one bad pass
            log.exception("credits.sweeper_failed")
            wait = SWEEP_INTERVAL.total_seconds()
        await asyncio.sleep(wait)


def start_sweeper() -> asyncio.Task[None]:
    """Starts the sweeper on the running loop (the app lifespan); `stop_sweeper` ends it."""
    return asyncio.get_running_loop().create_task(run_sweeper(), name="credits-sweeper")


async def stop_sweeper(task: asyncio.Task[None] | None) -> None:
    """Cancels the sweeper and lets top-ups under way finish recording their outcome."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    from app.credits import auto_top_up

    await auto_top_up.shutdown()
