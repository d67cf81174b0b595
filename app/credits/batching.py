"""Group commit: concurrent usage events within one worker share transactions.

Each `submit` queues its event; the batcher starts a batch on the next turn of the
event loop, so every event that is ready at that moment joins it (well under a
millisecond of waiting). A batch is applied by `record_usage`: one transaction that
locks its teams' account rows in id order, each event all or nothing on its own, in
arrival order. A team is in at most one batch at a time (its events would only queue
on its row lock), while batches of other teams run alongside, up to `max_active`.

A batch takes the teams of one shard only (`shards.cached`): on Citus its transaction
then runs on one worker, without two-phase commit; on plain PostgreSQL and SQLite
every team is on the one shard, so batches are as large as before. The shard of the
oldest waiting event goes first; a team whose shard is not known yet waits for one
query (`_resolve`) that learns it, its events still in arrival order.

On one database, two at a time, not more: every transaction costs a fixed six round
trips, so the fewer and larger the batches, the less CPU per event (scripts/bench
measured two ahead of four). Two rather than one, so a transaction
waiting on a row lock held elsewhere (a settlement, a month's close) does not stall
every other team of the worker.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Coroutine
from typing import Any

from app import tracing
from app.credits import shards
from app.credits.service import UsageRequest, UsageResult, record_usage

Pending = tuple[UsageRequest, "asyncio.Future[UsageResult]"]


class UsageBatcher:
    def __init__(
        self, max_events: int = 500, max_active: int = 2, max_active_sharded: int = 8
    ) -> None:
        self.max_events = max_events
        self.max_active = max_active
        # On Citus a batch holds one shard's teams, so batches are smaller and run on
        # different workers: more at once (measured, docs/scaling.md).
        self.max_active_sharded = max_active_sharded
        self._pending: list[Pending] = []
        self._busy_teams: set[uuid.UUID] = set()
        self._active = 0
        self._scheduled = False
        self._resolving = False
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
        unknown: set[uuid.UUID] = set()
        single = shards.single()  # one database: every team on the one shard
        limit = self.max_active if single else max(self.max_active, self.max_active_sharded)
        while self._pending and self._active < limit:
            batch: list[Pending] = []
            rest: list[Pending] = []
            shard: int | None = None
            for item in self._pending:
                team = item[0].team_id
                if len(batch) >= self.max_events or team in self._busy_teams:
                    rest.append(item)
                    continue
                where = shards.SINGLE if single else shards.cached(team)
                if where is None:
                    unknown.add(team)  # every event of the team waits: order is kept
                    rest.append(item)
                elif shard is None or where == shard:
                    shard = where  # the oldest startable event picks the shard
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
            self._spawn(self._apply(batch, teams))
        if unknown and not self._resolving:
            self._resolving = True
            self._spawn(self._resolve(unknown))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, teams: set[uuid.UUID]) -> None:
        """Learns the shards of teams not cached (one query on Citus), then starts their
        batches. Should the query fail, their waiters get the failure, as a batch's do."""
        try:
            await shards.shards_of(teams)
        except Exception as exc:  # noqa: BLE001 - every waiter of these teams gets it
            kept: list[Pending] = []
            for request, future in self._pending:
                if request.team_id in teams and shards.cached(request.team_id) is None:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    kept.append((request, future))
            self._pending = kept
        finally:
            self._resolving = False
            self._start_batches()

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
