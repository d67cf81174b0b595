"""The periodic sweeper: credits and holds expire on time, stalled top-ups resume,
throttles prune.

Every worker runs one (unless SCHEDULER=off); each pass takes an advisory lock
(`app.locks`), so one process of all the replicas sweeps at a time and the others skip
that pass. Sweeping twice would be safe (expiry runs under each team's account lock), only
wasted.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog

from app import locks
from app.billing import auto_top_up
from app.config import Settings
from app.credits import holds, promo, service
from app.credits.models import CreditAccount
from app.kit import clock

log = structlog.get_logger(__name__)

SWEEP_INTERVAL = timedelta(seconds=30)


async def sweep_once() -> int:
    """Expires due grants and holds of every team, resumes stalled top-ups and prunes the
    throttle.

    Returns the number of teams whose credits expired, plus those whose holds did.
    """
    expired = await service.expire_all_due()
    # A team whose grants expired above had its due holds expired in the same write.
    expired += await holds.expire_due_holds()
    await auto_top_up.resume_stalled()
    await promo.prune_failures()
    return expired


async def sweep_pass(settings: Settings) -> int | None:
    """`sweep_once` unless another process is sweeping (then None)."""
    async with locks.advisory_lock(settings, locks.CREDITS_SWEEPER, wait=False) as held:
        return await sweep_once() if held else None


async def next_wake(now: datetime) -> float:
    """Seconds until the next grant or hold expires, at most the sweep interval."""
    upcoming = (
        await CreditAccount.filter(next_expiry_at__isnull=False).order_by("next_expiry_at").first()
    )
    expiries = [await holds.next_expiry()]
    if upcoming is not None:
        expiries.append(upcoming.next_expiry_at)
    wait = SWEEP_INTERVAL.total_seconds()
    for expiry in expiries:
        if expiry is not None:
            until = (expiry - now).total_seconds()
            wait = min(wait, max(until, 0.0) + 0.05)
    return wait


async def run_sweeper(settings: Settings) -> None:
    """Sweeps until cancelled, waking at each grant's or hold's expiry so balances change
    on time."""
    while True:
        try:
            await sweep_pass(settings)
            wait = await next_wake(clock.now())
        except asyncio.CancelledError:
            raise
        except Exception:  # the sweeper must outlive one bad pass
            log.exception("credits.sweeper_failed")
            wait = SWEEP_INTERVAL.total_seconds()
        await asyncio.sleep(wait)


def start_sweeper(settings: Settings) -> asyncio.Task[None]:
    """Starts the sweeper on the running loop (the app lifespan); `stop_sweeper` ends it."""
    return asyncio.get_running_loop().create_task(run_sweeper(settings), name="credits-sweeper")


async def stop_sweeper(task: asyncio.Task[None] | None) -> None:
    """Cancels the sweeper and lets top-ups under way finish recording their outcome."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await auto_top_up.shutdown()
