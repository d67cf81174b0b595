"""Group commit: concurrent usage events within one worker share transactions.

Each `submit` queues its event; the batcher starts a batch on the next turn of the
event loop, so every event that is ready at that moment joins it (well under a
millisecond of waiting). A batch is applied by `record_usage`: one transaction that
locks its teams' account rows in id order, each event all or nothing on its own, in
arrival order. A team is in at most one batch at a time (its events would only queue
on its row lock), while batches of other teams run alongside, up to `max_active`.

Two at a time, not more: every transaction costs a fixed six round trips, so the
fewer and larger the batches, the less CPU per event (scripts/bench measured two
ahead of four). Two rather than one, so a transaction
waiting on a row lock held elsewhere (a settlement, a month's close) does not stall
every other team of the worker.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref

from app import tracing
from app.credits.service import UsageRequest, UsageResult, record_usage

Pending = tuple[UsageRequest, "asyncio.Future[UsageResult]"]


class UsageBatcher:
    def __init__(self, max_events: int = 500, max_active: int = 2) -> None:
        self.max_events = max_events
        self.max_active = max_active
        self._pending: list[Pending] = []
        self._busy_teams: set[uuid.UUID] = set()
        self._active = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: UsageRequest) -> UsageResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UsageResult] = loop.create_future()
        # From queueing to the batch's commit. The batch's own span (`usage.batch`) is a
        # child of the span current where it was scheduled: the first waiter's.
        with tracing.span("usage.batch_wait"):
            self._pending.append((request, future))
            if not self._scheduled:
                # Starting on the next turn lets the requests already runnable join.
                self._scheduled = True
                loop.call_soon(self._start_batches)
            return await future

    def _start_batches(self) -> None:
        self._scheduled = False
        while self._pending and self._active < self.max_active:
            batch: list[Pending] = []
            rest: list[Pending] = []
            for item in self._pending:
                if len(batch) < self.max_events and item[0].team_id not in self._busy_teams:
                    batch.append(item)
                else:
                    rest.append(item)
            if not batch:
                break
            # A team's events that did not fit stay queued behind it: the team is busy
            # until this batch commits, so they cannot overtake.
            teams = {request.team_id for request, _ in batch}
            self._pending = rest
            self._busy_teams |= teams
            self._active += 1
            task = asyncio.get_running_loop().create_task(self._apply(batch, teams))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _apply(self, batch: list[Pending], teams: set[uuid.UUID]) -> None:
        try:
            with tracing.span("usage.batch", {"usage.events": len(batch)}):
                results = await record_usage([request for request, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                # A caller that went away (cancelled) still had its event applied.
                if not future.done():
                    future.set_result(result)
        finally:
            self._busy_teams -= teams
            self._active -= 1
            self._start_batches()


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UsageBatcher] = (
    weakref.WeakKeyDictionary()
)


async def submit(request: UsageRequest) -> UsageResult:
    """Applies one usage event through this event loop's batcher."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = UsageBatcher()
    return await batcher.submit(request)
