"""Group commit: concurrent usage events within one worker share one transaction.

Each `submit` joins the batch being formed; one drain task per event loop applies a
batch with `record_usage` (one transaction, the teams' account rows locked in id
order) and hands every event its own all-or-nothing result, in arrival order. A
batch closes when the requests that are ready now have joined (a zero-length
yield, well under a millisecond) or when it reaches `max_events`.
"""

from __future__ import annotations

import asyncio
import weakref

from app.credits.service import UsageRequest, UsageResult, record_usage

Pending = tuple[UsageRequest, "asyncio.Future[UsageResult]"]


class UsageBatcher:
    def __init__(self, max_events: int = 500) -> None:
        self.max_events = max_events
        self._pending: list[Pending] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def submit(self, request: UsageRequest) -> UsageResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UsageResult] = loop.create_future()
        self._pending.append((request, future))
        if self._drain_task is None:
            self._drain_task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                # Requests already runnable get to join before the batch closes.
                await asyncio.sleep(0)
                batch = self._pending[: self.max_events]
                del self._pending[: self.max_events]
                try:
                    results = await record_usage([request for request, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    # A caller that went away (cancelled) still had its event applied.
                    if not future.done():
                        future.set_result(result)
        finally:
            self._drain_task = None


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
