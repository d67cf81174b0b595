"""Verifying API keys: an in-process cache, revocation across processes, lastUsedAt in batches.

- A presented secret is hashed and looked up in this process's cache; the database is
  read once per key and `cache_seconds` (concurrent misses share one read).
- Revoking a key evicts it here at once and publishes its id on the broker, so every
  other process evicts it on receipt; `cache_seconds` bounds the delay if that message
  is lost (Redis reconnects clear the whole cache).
- Expiry is compared with the clock at every use, cached or not.
- Each use notes the time in memory; `flush` writes the newest time per key, every
  `flush_seconds` and at shutdown, so a busy key costs no write per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import structlog
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.events import bus
from app.kit import clock
from app.kit.ids import parse_uuid
from app.teams.key_models import (
    ApiKeyFields,
    ApiKeySecret,
    ServiceKey,
    ServiceScope,
    TeamApiKey,
    TeamKeyScope,
)
from app.teams.key_secrets import KeyKind, parse_secret
from app.teams.models import Role

log = structlog.get_logger(__name__)

KEYS_CHANNEL = "api-keys:revoked"
CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class ServiceKeyCaller:
    """A verified service key: the platform's own system, with its scopes."""

    key_id: uuid.UUID
    name: str
    prefix: str
    scopes: frozenset[ServiceScope]

    def allows(self, scope: ServiceScope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class TeamKeyCaller:
    """A verified team API key: its own team only, as a member or an admin of billing."""

    key_id: uuid.UUID
    name: str
    prefix: str
    team_id: uuid.UUID
    role: Role


KeyCaller = ServiceKeyCaller | TeamKeyCaller


class InvalidKey(Exception):
    """Malformed, unknown, revoked or expired."""


@dataclass(frozen=True, slots=True)
class _Entry:
    caller: KeyCaller | None  # None: no such key, or revoked
    expires_at: datetime | None
    loaded_at: float  # time.monotonic()


_SERVICE_SCOPES = frozenset(s.value for s in ServiceScope)
_MODELS: dict[KeyKind, type[ApiKeyFields]] = {
    KeyKind.SERVICE: ServiceKey,
    KeyKind.TEAM: TeamApiKey,
}


def _caller(kind: KeyKind, key: ApiKeyFields) -> KeyCaller:
    scopes = key.scopes.split()
    if isinstance(key, TeamApiKey):
        role = Role.ADMIN if TeamKeyScope.BILLING_WRITE.value in scopes else Role.MEMBER
        return TeamKeyCaller(key.id, key.name, key.prefix, key.team_id, role)
    known = frozenset(ServiceScope(s) for s in scopes if s in _SERVICE_SCOPES)
    return ServiceKeyCaller(key.id, key.name, key.prefix, known)


async def _find(kind: KeyKind, digest: str) -> ApiKeyFields | None:
    """The key with this secret. A team key through `api_key_secrets` (its team), then by
    (team_id, id): its table is keyed, and on Citus sharded, by team."""
    if kind is KeyKind.SERVICE:
        return await ServiceKey.get_or_none(secret_hash=digest)
    owner = await ApiKeySecret.get_or_none(secret_hash=digest)
    if owner is None:
        return None
    key = await TeamApiKey.get_or_none(team_id=owner.team_id, id=owner.key_id)
    return key if key is not None and key.secret_hash == digest else None


async def _load(kind: KeyKind, digest: str) -> _Entry:
    key = await _find(kind, digest)
    if key is None or key.revoked_at is not None:
        return _Entry(None, None, time.monotonic())
    return _Entry(_caller(kind, key), key.expires_at, time.monotonic())


class KeyRing:
    """The process's verified keys and the last-use times not yet written."""

    def __init__(self, cache_seconds: float = 10.0) -> None:
        self.cache_seconds = cache_seconds
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Secrets that name no live key, apart: a flood of made-up keys cannot push the
        # real ones out of the cache.
        self._unknown: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, asyncio.Task[_Entry]] = {}
        # Bumped by every eviction: a read that started before it is not cached.
        self._generation = 0
        # (kind, key id) -> (newest use, the team of a team key: its row is written by
        # (team_id, id); None for a service key).
        self._used: dict[tuple[KeyKind, uuid.UUID], tuple[datetime, uuid.UUID | None]] = {}

    async def verify(self, token: str) -> KeyCaller:
        """The key a bearer secret names; raises InvalidKey."""
        parsed = parse_secret(token)
        if parsed is None:
            raise InvalidKey("malformed API key")
        kind, digest = parsed
        entry = await self._entry(kind, digest)
        if entry.caller is None:
            raise InvalidKey("unknown or revoked API key")
        now = clock.now()
        if entry.expires_at is not None and entry.expires_at <= now:
            raise InvalidKey("expired API key")
        team = entry.caller.team_id if isinstance(entry.caller, TeamKeyCaller) else None
        self._used[(kind, entry.caller.key_id)] = (now, team)
        return entry.caller

    async def _entry(self, kind: KeyKind, digest: str) -> _Entry:
        entry = self._entries.get(digest) or self._unknown.get(digest)
        if entry is not None and time.monotonic() - entry.loaded_at < self.cache_seconds:
            return entry
        loading = self._loading.get(digest)
        if loading is None:
            # A task of its own: a waiter that goes away does not cancel the others' read.
            loading = asyncio.ensure_future(self._read(kind, digest))
            loading.add_done_callback(_retrieve)
            self._loading[digest] = loading
        return await asyncio.shield(loading)

    async def _read(self, kind: KeyKind, digest: str) -> _Entry:
        generation = self._generation
        try:
            entry = await _load(kind, digest)
        finally:
            self._loading.pop(digest, None)
        if generation == self._generation:
            cache = self._entries if entry.caller is not None else self._unknown
            self._entries.pop(digest, None)
            self._unknown.pop(digest, None)
            cache[digest] = entry
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return entry

    def evict(self, key_id: uuid.UUID) -> None:
        """Forgets a key (revoked): its next use reads the database."""
        self._generation += 1
        stale = [d for d, e in self._entries.items() if e.caller and e.caller.key_id == key_id]
        for digest in stale:
            del self._entries[digest]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._unknown.clear()

    def on_message(self, message: str) -> None:
        """A broker message on KEYS_CHANNEL: a key id to evict, or RESYNC."""
        if message == bus.RESYNC:
            self.clear()  # revocations may have been missed while Redis was away
            return
        key_id = parse_uuid(message)
        if key_id is not None:
            self.evict(key_id)

    def last_used(self, kind: KeyKind, key_id: uuid.UUID) -> datetime | None:
        """This process's newest use of the key not yet written, if any."""
        noted = self._used.get((kind, key_id))
        return noted[0] if noted is not None else None

    async def flush(self) -> int:
        """Writes the newest use of each key used since the last flush; returns how many."""
        marks, self._used = self._used, {}
        if not marks:
            return 0
        try:
            async with in_transaction():
                for (kind, key_id), (used_at, team) in marks.items():
                    # Other processes flush too: only ever move the time forward.
                    rows = _MODELS[kind].filter(
                        Q(id=key_id), Q(last_used_at=None) | Q(last_used_at__lt=used_at)
                    )
                    if team is not None:
                        rows = rows.filter(team_id=team)
                    await rows.update(last_used_at=used_at)
        except Exception:
            for mark, noted in marks.items():  # kept for the next flush
                self._used[mark] = max(noted, self._used.get(mark, noted))
            raise
        return len(marks)

    def forget(self) -> None:
        """Drops everything cached and noted (tests that empty the tables)."""
        self.clear()
        self._used.clear()


def _retrieve(task: asyncio.Task[_Entry]) -> None:
    # Its waiters raise the failure; asyncio must not also report it as never retrieved.
    if not task.cancelled():
        task.exception()


ring = KeyRing()


async def revoked(key_id: uuid.UUID) -> None:
    """After a revocation commits: evict here, then tell the other processes."""
    ring.evict(key_id)
    try:
        await bus.broker.publish(KEYS_CHANNEL, str(key_id))
    except Exception:  # the cache's time limit still ends the key in the others
        log.warning("keyring.publish_failed", key_id=str(key_id), exc_info=True)


class Upkeep:
    """The process's share of the work: listening for revocations, flushing last uses."""

    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        self._stack = contextlib.AsyncExitStack()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._stack.enter_async_context(bus.broker.listen(KEYS_CHANNEL, ring.on_message))
        self._flusher = asyncio.create_task(self._flush_loop(), name="keyring-flush")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await ring.flush()
            except Exception:  # the marks are kept; the next turn tries again
                log.warning("keyring.flush_failed", exc_info=True)

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        try:
            await ring.flush()
        except Exception:
            log.warning("keyring.flush_failed", exc_info=True)
        await self._stack.aclose()
