"""Change notifications: services announce after commit, subscribers listen per team."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class MemoryBroker:
    """In-process pub/sub: one worker. Each subscriber holds at most the newest message."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)

    async def publish(self, channel: str, message: str) -> None:
        for queue in list(self._subscribers.get(channel, ())):
            if queue.full():
                # Coalesce: a slow reader gets the newest state, never a backlog.
                queue.get_nowait()
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        self._subscribers[channel].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    async def close(self) -> None:
        self._subscribers.clear()


broker = MemoryBroker()


def credits_channel(team_id: uuid.UUID) -> str:
    return f"credits:{team_id}"


async def credits_changed(team_id: uuid.UUID) -> None:
    """Announce that a team's credits changed; call only after the change committed."""
    await broker.publish(credits_channel(team_id), str(team_id))
