"""The broker behind live balances: memory:// in one process, redis:// across processes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from app.events import bus
from app.events.broker import RESYNC, Broker, MemoryBackend, RedisBackend
from tests.support.subscriptions import REDIS_URL

WAIT = 10.0


class Inbox:
    """A listener that keeps everything it hears."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def until(self, count: int) -> list[str]:
        async with asyncio.timeout(WAIT):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages


@pytest.fixture
async def brokers() -> AsyncIterator[tuple[Broker, Broker, str]]:
    """Two Redis brokers, as two worker processes would hold them, with a tagged name."""
    name = f"cl-test-{uuid.uuid4().hex[:8]}"
    url = f"{REDIS_URL}?client_name={name}"
    first, second = Broker(), Broker()
    await first.start(url)
    await second.start(url)
    yield first, second, name
    await first.stop()
    await second.stop()


def channel() -> str:
    return f"test:{uuid.uuid4()}"


async def test_memory_subscribe_keeps_only_the_newest_message() -> None:
    broker = Broker()
    assert isinstance(broker.backend, MemoryBackend)
    name = channel()
    async with broker.subscribe(name) as queue:
        for index in range(5):
            await broker.publish(name, str(index))
        assert queue.qsize() == 1
        assert queue.get_nowait() == "4"
    # Nobody listens any more: publishing is a no-op.
    await broker.publish(name, "late")


async def test_a_message_published_in_one_process_reaches_listeners_in_both(
    brokers: tuple[Broker, Broker, str],
) -> None:
    first, second, _ = brokers
    name = channel()
    here, there = Inbox(), Inbox()
    async with first.listen(name, here), second.listen(name, there):
        # listen() returns once Redis confirmed the subscription: nothing can be missed.
        await first.publish(name, "hello")
        assert await there.until(1) == ["hello"]
        assert await here.until(1) == ["hello"]
    async with second.subscribe(name) as queue:
        await first.publish(name, "again")
        assert await asyncio.wait_for(queue.get(), WAIT) == "again"


async def test_publish_many_delivers_each_message_in_order_in_one_round_trip(
    brokers: tuple[Broker, Broker, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A usage transaction announces all its teams at once: one command to Redis."""
    first, second, _ = brokers
    names = [channel() for _ in range(3)]
    inboxes = [Inbox() for _ in names]
    backend = first.backend
    assert isinstance(backend, RedisBackend)
    single = 0

    async def counted(channel_name: str, message: str) -> None:
        nonlocal single
        single += 1

    monkeypatch.setattr(backend, "publish", counted)  # publish_many must not call it
    async with contextlib.AsyncExitStack() as stack:
        for name, inbox in zip(names, inboxes, strict=True):
            await stack.enter_async_context(second.listen(name, inbox))
        messages = [(names[0], "a1"), (names[1], "b1"), (names[0], "a2"), (names[2], "c1")]
        await first.publish_many(messages)
        assert await inboxes[0].until(2) == ["a1", "a2"]
        assert await inboxes[1].until(1) == ["b1"]
        assert await inboxes[2].until(1) == ["c1"]
        await first.publish_many([])
        # A Redis that lost its scripts (a restart) gets the script again.
        client = redis.Redis.from_url(REDIS_URL)
        try:
            await client.script_flush()
        finally:
            await client.aclose()
        await first.publish_many([(names[1], "b2"), (names[2], "c2")])
        assert await inboxes[1].until(2) == ["b1", "b2"]
        assert await inboxes[2].until(2) == ["c1", "c2"]
    assert single == 0
    memory, inbox = Broker(), Inbox()
    async with memory.listen(names[0], inbox):
        await memory.publish_many([(names[0], "m1"), (names[1], "x"), (names[0], "m2")])
    assert inbox.messages == ["m1", "m2"]


async def test_one_redis_subscription_per_channel_per_process(
    brokers: tuple[Broker, Broker, str],
) -> None:
    first, _second, _ = brokers
    backend = first.backend
    assert isinstance(backend, RedisBackend)
    name = channel()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        async with first.listen(name, Inbox()), first.listen(name, Inbox()):
            counts = await client.pubsub_numsub(name)
            assert counts == [(name.encode(), 1)]
        # The last listener gone, the process unsubscribes.
        for _ in range(int(WAIT / 0.05)):
            if (await client.pubsub_numsub(name))[0][1] == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("still subscribed")
    finally:
        await client.aclose()


async def test_after_a_lost_redis_connection_listeners_resync_and_hear_again(
    brokers: tuple[Broker, Broker, str],
) -> None:
    first, second, tag = brokers
    name = channel()
    inbox = Inbox()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        async with second.listen(name, inbox):
            # Kill the subscriber connections of our two brokers (and only those).
            for entry in await client.client_list():
                if entry.get("name") == tag and int(entry.get("sub", 0)) > 0:
                    await client.client_kill_filter(_id=entry["id"])
            # The listener hears that it may have missed something, then hears again.
            assert (await inbox.until(1))[0] == RESYNC
            async with asyncio.timeout(WAIT):
                while "after" not in inbox.messages:
                    await first.publish(name, "after")
                    await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def test_a_lost_notice_never_fails_the_committed_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(_channel: str, _message: str) -> None:
        raise ConnectionError("redis is down")

    async def broken_many(_messages: object) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(bus.broker, "publish", broken)
    monkeypatch.setattr(bus.broker, "publish_many", broken_many)
    # Logged, not raised: the change it announces is already committed.
    await bus.credits_changed(uuid.uuid4())
    await bus.credits_changed_many([uuid.uuid4(), uuid.uuid4()])
    await bus.members_changed(uuid.uuid4())


async def test_notices_carry_their_commit_time() -> None:
    team = uuid.uuid4()
    inbox = Inbox()
    async with bus.broker.listen(bus.credits_channel(team), inbox):
        await bus.credits_changed(team)
    (message,) = inbox.messages
    committed = bus.committed_at(message)
    assert committed is not None
    assert committed > 1_700_000_000
    assert bus.committed_at(str(team)) is None
    assert bus.committed_at("{not json") is None
