"""Live balances: one feed per team and process, fanned out to its subscribers.

A feed listens to the team's credits channel. A notice marks it dirty; the feed then
reads `credits_view` ONCE and hands the snapshot to every subscriber. Notices that
arrive during a read collapse into one more read, so a burst costs at most two reads
and always ends on the newest state. Each subscriber holds at most one undelivered
snapshot (a newer one replaces it), so a subscriber that stops reading blocks nobody
and holds one snapshot at most.

Access: a member removed from the team stops receiving as soon as `members_changed`
reaches the feed; a periodic sweep re-checks every subscription as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app import metrics
from app.credits import service as credits
from app.credits.service import CreditsView
from app.events import bus
from app.kit.errors import NotFound
from app.teams.models import Membership

log = structlog.get_logger(__name__)

READ_RETRY_SECONDS = 1.0
SWEEP_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A team's credits as read after the newest notice the feed had seen."""

    view: CreditsView
    # Unix times of the oldest and newest commits whose notices led to this read; None for
    # a subscriber's first state.
    first_committed_at: float | None
    committed_at: float | None
    # What transports build once per snapshot and share between its subscribers.
    shared: dict[str, object] = dataclasses.field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one subscriber's message reflects, for transports to stamp on it."""

    # The newest commit the balance shows.
    committed_at: float | None
    # The oldest commit this subscriber sees for the first time in this message: its
    # commit-to-receipt time is the longest any change waited to reach this subscriber.
    pending_since: float | None
    # The snapshot's `shared`: what transports build once for all its subscribers.
    shared: dict[str, object]


# Set by the task delivering a snapshot: transports read it to annotate the message.
delivering: ContextVar[Delivery | None] = ContextVar("delivering", default=None)


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def fingerprint(view: CreditsView) -> tuple[object, ...]:
    """Everything a subscriber can see of a view: equal fingerprints, identical messages."""
    parts: list[object] = []
    for field in dataclasses.fields(view):
        value = getattr(view, field.name)
        if isinstance(value, list):
            value = tuple(_row(item) for item in value)
        parts.append(value)
    return tuple(parts)


def _row(item: object) -> object:
    meta = getattr(item, "_meta", None)
    if meta is None:
        return item
    return tuple(getattr(item, name, None) for name in sorted(meta.db_fields))


class Finished(Exception):
    """The subscription ends without an error: the server is shutting down."""


class FeedFailed(Exception):
    """The team's feed broke (logged); the subscription ends with an error."""


class Follower:
    """One subscription's mailbox: the newest undelivered snapshot, or the reason it ended."""

    __slots__ = ("_ended", "_latest", "_pending_since", "_ready", "feed", "user_id")

    def __init__(self, feed: TeamFeed, user_id: uuid.UUID | None) -> None:
        self.feed = feed
        # None for an operator, who may read any team.
        self.user_id = user_id
        self._latest: Snapshot | None = None
        # The oldest commit offered but not yet taken (dropped snapshots included).
        self._pending_since: float | None = None
        self._ended: Exception | None = None
        self._ready = asyncio.Event()

    def offer(self, snapshot: Snapshot) -> None:
        self._latest = snapshot
        self._pending_since = _earliest(self._pending_since, snapshot.first_committed_at)
        self._ready.set()

    def end(self, reason: Exception) -> None:
        self._ended = reason
        self._latest = None
        self._ready.set()

    @property
    def ended(self) -> bool:
        return self._ended is not None

    async def next(self) -> tuple[Snapshot, Delivery]:
        """The newest snapshot; raises the reason once the subscription ended."""
        while True:
            if self._ended is not None:
                raise self._ended
            snapshot = self._latest
            if snapshot is not None:
                delivery = Delivery(snapshot.committed_at, self._pending_since, snapshot.shared)
                self._latest = self._pending_since = None
                self._ready.clear()
                return snapshot, delivery
            self._ready.clear()
            await self._ready.wait()


class TeamFeed:
    """The team's notices in, one read per burst, snapshots out to every follower."""

    def __init__(self, hub: LiveHub, team_id: uuid.UUID) -> None:
        self.hub = hub
        self.team_id = team_id
        self.followers: set[Follower] = set()
        self.joining: list[Follower] = []
        self.closed = False
        self._dirty = False
        # Commit times of the notices since the last read began.
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._recheck = False
        # What every follower was last sent: a re-read that finds the same is not re-sent.
        self._last_sent: tuple[object, ...] | None = None
        self._wake = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"credits-feed-{team_id}")

    @property
    def empty(self) -> bool:
        return not self.followers and not self.joining

    def all_followers(self) -> Iterable[Follower]:
        return [*self.followers, *self.joining]

    def _on_credits(self, message: str) -> None:
        if message == bus.RESYNC:
            self._recheck = True
        at = bus.committed_at(message)
        self._first_at = _earliest(self._first_at, at)
        self._last_at = _latest(self._last_at, at)
        self._dirty = True
        self._wake.set()

    def _on_members(self, _message: str) -> None:
        self._recheck = True
        self._wake.set()

    def join(self, follower: Follower) -> None:
        self.joining.append(follower)
        self._wake.set()

    def leave(self, follower: Follower) -> None:
        self.followers.discard(follower)
        with contextlib.suppress(ValueError):
            self.joining.remove(follower)
        if self.empty:
            self.close()

    def close(self) -> None:
        """Stops the feed; the hub forgets it at once so a new subscriber starts a new one."""
        if not self.closed:
            self.closed = True
            self.hub.forget(self)
            self._wake.set()

    def revoke(self, allowed: set[uuid.UUID]) -> None:
        """Ends the followers whose user is no longer in `allowed` (operators stay)."""
        for follower in self.all_followers():
            if follower.user_id is not None and follower.user_id not in allowed:
                follower.end(NotFound())
                self.leave(follower)

    async def _run(self) -> None:
        try:
            async with (
                bus.broker.listen(bus.credits_channel(self.team_id), self._on_credits),
                bus.broker.listen(bus.members_channel(self.team_id), self._on_members),
            ):
                # Listening before the first read: no change can fall between the two.
                while not self.closed:
                    await self._wake.wait()
                    self._wake.clear()
                    if self.closed:
                        break
                    if self._recheck:
                        self._recheck = False
                        await self._check_access()
                    if self._dirty or self.joining:
                        await self._read_and_deliver()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # end the subscriptions rather than leave them mute
            log.exception("live.feed_failed", team_id=str(self.team_id))
            for follower in self.all_followers():
                follower.end(FeedFailed(repr(exc)))
        finally:
            self.close()

    async def _check_access(self) -> None:
        users = {f.user_id for f in self.all_followers() if f.user_id is not None}
        if not users:
            return
        members: list[uuid.UUID] = await Membership.filter(
            team_id=self.team_id, user_id__in=users
        ).values_list("user_id", flat=True)  # type: ignore[assignment]
        self.revoke(set(members))

    async def _read_and_deliver(self) -> None:
        dirty, self._dirty = self._dirty, False
        span = (self._first_at, self._last_at)
        self._first_at = self._last_at = None
        joining, self.joining = self.joining, []
        self.followers.update(joining)
        try:
            view = await credits.credits_view(self.team_id)
        except NotFound:
            for follower in self.all_followers():
                follower.end(NotFound())
            self.followers.clear()
            self.joining.clear()
            self.close()
            return
        except Exception:  # a failed read is retried; subscribers wait
            log.warning("live.read_failed", team_id=str(self.team_id), exc_info=True)
            self._retry_later(dirty, span, joining)
            return
        joined = [f for f in joining if f in self.followers]
        if dirty:
            seen = fingerprint(view)
            if seen == self._last_sent:
                # A notice whose change the previous read already showed: only joiners need it.
                targets: Iterable[Follower] = joined
            else:
                # Everyone gets the newest state, the joiners included.
                self._last_sent = seen
                targets = self.followers
            snapshot = Snapshot(view, *span)
        else:
            targets, snapshot = joined, Snapshot(view, None, None)
        for follower in targets:
            follower.offer(snapshot)

    def _retry_later(
        self, dirty: bool, span: tuple[float | None, float | None], joining: list[Follower]
    ) -> None:
        self._dirty = self._dirty or dirty
        self._first_at = _earliest(self._first_at, span[0])
        self._last_at = _latest(self._last_at, span[1])
        still = [f for f in joining if f in self.followers]
        self.followers.difference_update(still)
        self.joining[:0] = still
        asyncio.get_running_loop().call_later(READ_RETRY_SECONDS, self._wake.set)


class LiveHub:
    """The process's feeds, by team, and the periodic access sweep."""

    def __init__(self) -> None:
        self.feeds: dict[uuid.UUID, TeamFeed] = {}
        self.access_recheck_seconds = 30.0
        self._sweeper: asyncio.Task[None] | None = None

    def join(self, team_id: uuid.UUID, user_id: uuid.UUID | None) -> Follower:
        feed = self.feeds.get(team_id)
        if feed is None:
            feed = self.feeds[team_id] = TeamFeed(self, team_id)
        follower = Follower(feed, user_id)
        feed.join(follower)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="live-access-sweep")
        return follower

    def leave(self, follower: Follower) -> None:
        follower.feed.leave(follower)

    def forget(self, feed: TeamFeed) -> None:
        if self.feeds.get(feed.team_id) is feed:
            del self.feeds[feed.team_id]

    async def close(self) -> None:
        """Ends every subscription and stops the feeds (the app is shutting down)."""
        feeds = list(self.feeds.values())
        for feed in feeds:
            for follower in feed.all_followers():
                follower.end(Finished())
            feed.close()
        tasks = [feed.task for feed in feeds]
        if self._sweeper is not None:
            self._sweeper.cancel()
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    async def _sweep_forever(self) -> None:
        while self.feeds:
            await asyncio.sleep(self.access_recheck_seconds)
            try:
                await self.sweep()
            except Exception:  # try again next round
                log.warning("live.sweep_failed", exc_info=True)

    async def sweep(self) -> None:
        """Re-checks every member's subscriptions with one query per chunk of teams."""
        feeds = [f for f in self.feeds.values() if any(x.user_id for x in f.all_followers())]
        for start in range(0, len(feeds), SWEEP_CHUNK):
            chunk = feeds[start : start + SWEEP_CHUNK]
            users = {x.user_id for f in chunk for x in f.all_followers() if x.user_id}
            rows = await Membership.filter(
                team_id__in=[f.team_id for f in chunk], user_id__in=users
            ).values_list("team_id", "user_id")
            allowed: dict[uuid.UUID, set[uuid.UUID]] = {}
            for team_id, user_id in rows:
                allowed.setdefault(team_id, set()).add(user_id)
            for feed in chunk:
                feed.revoke(allowed.get(feed.team_id, set()))


hub = LiveHub()


class _LiveCollector(Collector):
    """Open balance subscriptions, read from the live hub at scrape time (no hot-path cost)."""

    def describe(self) -> Iterable[Metric]:
        return self._families(0, 0)

    def collect(self) -> Iterable[Metric]:
        feeds = list(hub.feeds.values())
        followers = sum(len(feed.followers) + len(feed.joining) for feed in feeds)
        return self._families(followers, len(feeds))

    @staticmethod
    def _families(followers: int, feeds: int) -> list[Metric]:
        return [
            GaugeMetricFamily(
                "creditline_subscriptions",
                "Open creditsUpdated subscriptions in this process.",
                value=followers,
            ),
            GaugeMetricFamily(
                "creditline_subscription_feeds",
                "Teams with at least one open creditsUpdated subscription in this process.",
                value=feeds,
            ),
        ]


metrics.register_local(_LiveCollector())


@asynccontextmanager
async def follow(team_id: uuid.UUID, user_id: uuid.UUID | None) -> AsyncIterator[Follower]:
    """Subscribes to a team's credits: first the current state, then the newest after changes.

    `user_id` is the member whose access is re-checked; None for an operator.
    """
    follower = hub.join(team_id, user_id)
    try:
        yield follower
    finally:
        hub.leave(follower)


# Young-generation collections every 50,000 allocations instead of 700 (CPython's default).
GC_THRESHOLDS = (50_000, 20, 10)


async def start(broker_url: str, access_recheck_seconds: float) -> None:
    """The app's start-up: the broker BROKER_URL names, and the sweep's period."""
    hub.access_recheck_seconds = access_recheck_seconds
    # Each open subscription keeps ~300 objects alive. With the default thresholds, the
    # fan-out's short-lived objects got promoted and full collections followed one another
    # while subscribers connected: 11 per worker with 2,500 websockets, the last ones
    # 1 to 3 s long, every subscriber of the process frozen meanwhile. Rarer young
    # collections let those objects die young; measured: no full collection at all.
    gc.set_threshold(*GC_THRESHOLDS)
    await bus.broker.start(broker_url)


async def stop() -> None:
    """The app's shutdown: ends the subscriptions, then closes the broker."""
    await hub.close()
    await bus.broker.stop()
