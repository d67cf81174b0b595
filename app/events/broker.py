"""Pub/sub behind one small interface: in-process (`memory://`) or Redis pub/sub (`redis://`).

A process holds ONE broker. Listeners are plain callbacks run on the event loop; with
Redis, the process keeps one subscriber connection (plus a small pool for PUBLISH) and
fans each message out to its local listeners, so a thousand open widgets of one team
cost one Redis subscription, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Listener = Callable[[str], None]

# Delivered to every listener when messages may have been lost (the Redis connection
# dropped and came back): listeners re-read whatever they mirror.
RESYNC = "\x00resync"

# How long a SUBSCRIBE may take to be confirmed before the listener is added anyway.
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0


class Backend(ABC):
    """What a broker backend does; `Broker` below is the process-wide front."""

    @abstractmethod
    async def start(self) -> None:
        """Opens connections; called once, before the first listener."""

    @abstractmethod
    async def close(self) -> None:
        """Releases connections; listeners get nothing afterwards."""

    @abstractmethod
    async def publish(self, channel: str, message: str) -> None:
        """Delivers `message` to every listener of `channel`, in every process."""

    async def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """`publish` for each (channel, message), in order."""
        for channel, message in messages:
            await self.publish(channel, message)

    @abstractmethod
    async def add_listener(self, channel: str, listener: Listener) -> None:
        """Returns once every message published from now on reaches `listener`."""

    @abstractmethod
    async def remove_listener(self, channel: str, listener: Listener) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raises when the broker cannot be reached (the readiness check)."""


def _deliver(channel: str, listeners: set[Listener], message: str) -> None:
    for listener in list(listeners):
        try:
            listener(message)
        except Exception:  # one broken listener must not starve the others
            log.exception("broker.listener_failed", channel=channel)


class MemoryBackend(Backend):
    """One process: publish calls the listeners directly."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = defaultdict(set)

    async def start(self) -> None:
        pass

    async def ping(self) -> None:
        pass  # in this process: answers whenever the process does

    async def publish(self, channel: str, message: str) -> None:
        listeners = self._listeners.get(channel)
        if listeners:
            _deliver(channel, listeners, message)

    async def add_listener(self, channel: str, listener: Listener) -> None:
        self._listeners[channel].add(listener)

    async def remove_listener(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[channel]

    async def close(self) -> None:
        self._listeners.clear()


# PUBLISH each (channel, message) pair of ARGV, in order.
_PUBLISH_ALL = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end"


class RedisBackend(Backend):
    """Redis pub/sub: one subscriber connection per process, channels subscribed on demand."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._listeners: dict[str, set[Listener]] = {}
        # Each SUBSCRIBE we send waits for its confirmation, in order, per channel.
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._commands = asyncio.Lock()
        self._client: Any = None
        self._pubsub: Any = None
        self._publish_all: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        pool = BlockingConnectionPool.from_url(
            self.url,
            decode_responses=True,
            max_connections=16,
            timeout=5,
            health_check_interval=15,
            socket_keepalive=True,
            socket_connect_timeout=5,
        )
        self._client = Redis(connection_pool=pool)
        # Loaded on first use, and again by redis-py if Redis restarted without it.
        self._publish_all = self._client.register_script(_PUBLISH_ALL)
        # Fail at start-up, not at the first balance change, when Redis is unreachable.
        await self._client.ping()
        self._pubsub = self._client.pubsub()
        await self._pubsub.connect()
        # Called on every reconnect, after redis-py re-subscribed our channels.
        self._pubsub.connection.register_connect_callback(self._on_reconnect)
        self._reader = asyncio.create_task(self._read_loop(), name="redis-broker-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for waiters in self._confirmations.values():
            for waiter in waiters:
                waiter.cancel()
        self._confirmations.clear()
        self._listeners.clear()
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, channel: str, message: str) -> None:
        await self._client.publish(channel, message)

    async def ping(self) -> None:
        if self._client is None:
            raise ConnectionError("the Redis broker is closed")
        await self._client.ping()

    async def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        # One command for all of them: a usage transaction of 250 teams announces each.
        # A pipeline of PUBLISHes costs several times the client CPU of one script call.
        if len(messages) < 2:
            for channel, message in messages:
                await self.publish(channel, message)
            return
        await self._publish_all(args=[part for pair in messages for part in pair])

    async def add_listener(self, channel: str, listener: Listener) -> None:
        waiter: asyncio.Future[None] | None = None
        async with self._commands:
            listeners = self._listeners.get(channel)
            if listeners is not None:
                listeners.add(listener)
                # Still pending: wait for the newest SUBSCRIBE of this channel.
                pending = self._confirmations.get(channel)
                waiter = pending[-1] if pending else None
            else:
                self._listeners[channel] = {listener}
                waiter = asyncio.get_running_loop().create_future()
                self._confirmations[channel].append(waiter)
                try:
                    await self._pubsub.subscribe(channel)
                except Exception:
                    self._listeners.pop(channel, None)
                    self._drop_waiter(channel, waiter)
                    raise
        if waiter is not None:
            # Until Redis confirms, a message published now might not reach us.
            try:
                await asyncio.wait_for(asyncio.shield(waiter), SUBSCRIBE_CONFIRM_TIMEOUT)
            except TimeoutError:
                log.warning("broker.subscribe_unconfirmed", channel=channel)

    async def remove_listener(self, channel: str, listener: Listener) -> None:
        async with self._commands:
            listeners = self._listeners.get(channel)
            if listeners is None:
                return
            listeners.discard(listener)
            if listeners:
                return
            del self._listeners[channel]
            if self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(channel)
                except Exception:  # a reconnect re-subscribes only live channels
                    log.warning("broker.unsubscribe_failed", channel=channel, exc_info=True)

    def _drop_waiter(self, channel: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._confirmations.get(channel)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._confirmations[channel]

    def _confirmed(self, channel: str) -> None:
        waiters = self._confirmations.get(channel)
        if not waiters:
            return
        waiter = waiters.popleft()
        if not waiters:
            del self._confirmations[channel]
        if not waiter.done():
            waiter.set_result(None)

    async def _read_loop(self) -> None:
        """Reads the subscriber connection; reconnects with back-off and then resyncs."""
        delay = 0.2
        lost = False
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect and carry on
                if not lost:
                    log.warning("broker.redis_lost", error=repr(exc))
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if lost:
                lost, delay = False, 0.2
                log.info("broker.redis_back")
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"]
            if kind == "message":
                listeners = self._listeners.get(channel)
                if listeners:
                    _deliver(channel, listeners, message["data"])
            elif kind == "subscribe":
                self._confirmed(channel)

    def _on_reconnect(self, _connection: object) -> None:
        # Whatever was published while we were away is gone: every listener re-reads.
        asyncio.get_running_loop().call_soon(self._resync)

    def _resync(self) -> None:
        for channel, listeners in list(self._listeners.items()):
            _deliver(channel, listeners, RESYNC)


def create_backend(url: str) -> Backend:
    if url.startswith("memory://"):
        return MemoryBackend()
    if url.startswith(("redis://", "rediss://")):
        return RedisBackend(url)
    raise ValueError(f"unknown broker URL {url!r}")


class Broker:
    """The process-wide broker: `memory://` until the app's lifespan starts another one."""

    def __init__(self) -> None:
        self._backend: Backend = MemoryBackend()
        self.url = "memory://"

    @property
    def backend(self) -> Backend:
        return self._backend

    async def start(self, url: str) -> None:
        """Switches to the broker `url` names; call before anything listens."""
        backend = create_backend(url)
        await backend.start()
        previous, self._backend, self.url = self._backend, backend, url
        await previous.close()

    async def stop(self) -> None:
        """Closes the running broker and falls back to an empty in-process one."""
        backend, self._backend, self.url = self._backend, MemoryBackend(), "memory://"
        await backend.close()

    async def publish(self, channel: str, message: str) -> None:
        await self._backend.publish(channel, message)

    async def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """Several messages in order, in one round trip to Redis."""
        await self._backend.publish_many(messages)

    async def ping(self) -> None:
        """Raises when the running broker cannot be reached."""
        await self._backend.ping()

    @asynccontextmanager
    async def listen(self, channel: str, listener: Listener) -> AsyncIterator[None]:
        """Calls `listener(message)` for each message on `channel` while the block runs."""
        backend = self._backend
        try:
            await backend.add_listener(channel, listener)
            yield
        finally:
            await backend.remove_listener(channel, listener)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue holding at most the newest message: a slow reader never builds a backlog."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)

        def put_newest(message: str) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

        async with self.listen(channel, put_newest):
            yield queue
