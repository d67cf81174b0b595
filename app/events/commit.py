"""One database transaction and what it leaves to do once it has committed.

Every money or membership change runs in `atomic()`. Inside, code records what
happened on the `Transaction` (a team's credits changed, a member left, a domain
announcement such as "a top-up is due") instead of acting on it; after the commit the
collector publishes the broker notices in one round trip and hands each announcement
to the handlers that higher layers registered with `on()`. Nothing runs if the
transaction rolls back. See docs/architecture.md, "After commit".
"""

from __future__ import annotations

import contextvars
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.events import bus

log = structlog.get_logger(__name__)

A = TypeVar("A")
Handler = Callable[[Any], Awaitable[None]]

_handlers: dict[type, list[Handler]] = {}
_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "creditline_transaction", default=None
)


def on(kind: type[A], handler: Callable[[A], Awaitable[None]]) -> None:
    """Runs `handler` after the commit of every transaction that announced a `kind`.

    Higher packages register here (at import), so a lower domain can say what
    happened without importing who acts on it.
    """
    handlers = _handlers.setdefault(kind, [])
    if handler not in handlers:
        handlers.append(handler)


@dataclass(eq=False)
class Transaction:
    """The open transaction's connection and its after-commit work."""

    conn: BaseDBAsyncClient
    _credits: dict[uuid.UUID, None] = field(default_factory=dict)  # ordered set
    _members: dict[uuid.UUID, None] = field(default_factory=dict)
    _announcements: list[object] = field(default_factory=list)
    _callbacks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def credits_changed(self, team_id: uuid.UUID) -> None:
        """The team's balances changed: subscribers are told after the commit."""
        self._credits[team_id] = None

    def members_changed(self, team_id: uuid.UUID) -> None:
        """The team lost a member: open subscriptions re-check access after the commit."""
        self._members[team_id] = None

    def announce(self, announcement: object) -> None:
        """A domain announcement for the handlers registered with `on()`."""
        self._announcements.append(announcement)

    def after(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Any other work that must wait for the commit (pushing alerts, Stripe calls)."""
        self._callbacks.append(callback)

    async def after_commit(self) -> None:
        """Runs the collected work; a failure is logged, never raised (the change stands)."""
        if self._credits:
            await bus.credits_changed_many(self._credits)
        for team_id in self._members:
            await bus.members_changed(team_id)
        for callback in self._callbacks:
            await _safely(callback)
        for announcement in self._announcements:
            for handler in _handlers.get(type(announcement), ()):
                await _safely(functools.partial(handler, announcement))


async def _safely(call: Callable[[], Awaitable[None]]) -> None:
    try:
        await call()
    except Exception:  # committed already: a failed follow-up must not fail the request
        log.exception("commit.follow_up_failed")


def current() -> Transaction:
    """The transaction `atomic()` opened around the caller."""
    transaction = _current.get()
    if transaction is None:
        raise RuntimeError("no transaction: call inside `async with atomic()`")
    return transaction


@asynccontextmanager
async def atomic() -> AsyncIterator[Transaction]:
    """A transaction whose collected work runs once it has committed, never before."""
    if _current.get() is not None:
        raise RuntimeError("atomic() does not nest: pass the open Transaction down")
    async with in_transaction() as conn:
        transaction = Transaction(conn)
        token = _current.set(transaction)
        try:
            yield transaction
        finally:
            _current.reset(token)
    await transaction.after_commit()
