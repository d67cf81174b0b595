"""The in-process scheduler: closes each month shortly after it ends, retries payments.

Every worker runs one. They need no coordination: the close is idempotent (a unique key
per team-period decides each invoice) and a charge is leased to one worker at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import structlog

from app.invoices import service
from app.kit import clock

log = structlog.get_logger(__name__)

# Give usage stamped just before midnight (and clocks slightly behind) time to arrive.
CLOSE_DELAY = timedelta(minutes=5)
INTERVAL_SECONDS = 60.0

# Further work each pass runs, handed in by a higher layer (the Stripe address sync).
Job = Callable[[], Awaitable[object]]


async def run_once(also: Sequence[Job] = ()) -> None:
    """One pass: close what is due, retry due payments, then each of `also`."""
    now = clock.now()
    if now >= clock.month_start(now) + CLOSE_DELAY:
        for period in await service.periods_to_close(now):
            report = await service.close_month(period)
            log.info("scheduler.closed", summary=report.summary())
    retried = await service.retry_payments(due_only=True)
    if retried.attempted:
        log.info("scheduler.retried", summary=retried.summary())
    for job in also:
        await job()


class InvoiceScheduler:
    """A background task calling `run_once` every `interval` seconds (with jitter)."""

    def __init__(self, interval: float = INTERVAL_SECONDS, also: Sequence[Job] = ()) -> None:
        self.interval = interval
        self.also = tuple(also)
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
                await run_once(self.also)
            except Exception:
                log.exception("scheduler.pass_failed")
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))
