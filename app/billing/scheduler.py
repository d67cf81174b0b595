"""The in-process scheduler: closes each month shortly after it ends, retries payments.

Every worker runs one (unless SCHEDULER=off), and each pass takes an advisory lock
(`app.locks`) so one process of all the replicas runs it at a time; the others skip that
pass. The lock saves duplicated work: correctness never depended on it, since the close
is idempotent (a unique key per team-period decides each invoice) and a charge is leased
to one worker at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta

import structlog

from app import locks
from app.billing import address_sync, collection
from app.config import Settings
from app.invoices import close
from app.kit import clock

log = structlog.get_logger(__name__)

# Give usage stamped just before midnight (and clocks slightly behind) time to arrive.
CLOSE_DELAY = timedelta(minutes=5)
INTERVAL_SECONDS = 60.0


async def run_once() -> None:
    """One pass: close what is due, retry due payments, catch up on Stripe address syncs."""
    now = clock.now()
    if now >= clock.month_start(now) + CLOSE_DELAY:
        for period in await close.periods_to_close(now):
            report = await collection.close_month(period)
            log.info("scheduler.closed", summary=report.summary())
    retried = await collection.retry_payments(due_only=True)
    if retried.attempted:
        log.info("scheduler.retried", summary=retried.summary())
    await address_sync.resync_pending()


async def run_pass(settings: Settings) -> bool:
    """`run_once` unless another process is running a pass; True when this one ran it."""
    async with locks.advisory_lock(settings, locks.INVOICE_SCHEDULER, wait=False) as held:
        if held:
            await run_once()
        return held


class InvoiceScheduler:
    """A background task calling `run_pass` every `interval` seconds (with jitter)."""

    def __init__(self, settings: Settings, interval: float = INTERVAL_SECONDS) -> None:
        self.settings = settings
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="invoice-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        # Jitter spreads several workers' passes apart; none depends on it for safety.
        await asyncio.sleep(random.uniform(1.0, 5.0))
        while True:
            try:
                await run_pass(self.settings)
            except Exception:
                log.exception("scheduler.pass_failed")
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))
