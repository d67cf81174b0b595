"""The transactional outbox: what must be told (emails, webhooks), written with the change.

`emit` inserts one `OutboxEvent` row inside the caller's `atomic()` transaction, so the
message exists exactly when the change that caused it commits: never before, never lost
by a crash after it. `app.notifications` turns each row into deliveries (one per email
recipient or webhook endpoint) and delivers them with retries. Any layer may emit; none
needs to know who listens. See docs/notifications.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.events.commit import Transaction
from app.kit import clock

# Off (NOTIFICATIONS=off): nothing is written, so nothing is sent; the usage path then
# skips the block/unblock bookkeeping too (`app.credits.programs`).
enabled = True

_wakers: list[Callable[[], None]] = []


class OutboxEvent(Model):
    """One event to tell: its public id is `event_id(id)`, ordered by `id` per team."""

    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=64)
    team_id = fields.UUIDField(null=True)
    data: dict[str, Any] = fields.JSONField()
    created_at = fields.DatetimeField()
    # Set once the notifier has written its deliveries (same transaction).
    dispatched_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_events"
        indexes = (Index(fields=("dispatched_at", "id")),)


def event_id(sequence: int) -> str:
    """The stable public id of an event: sorts (as text) in the order events were written."""
    return f"evt_{sequence:020d}"


def on_write(wake: Callable[[], None]) -> None:
    """`wake()` runs after each commit that emitted (the notifier delivers promptly)."""
    if wake not in _wakers:
        _wakers.append(wake)


def wake() -> None:
    """Wakes the notifier now (after a commit that emitted; a replay)."""
    for waker in _wakers:
        waker()


async def _wake() -> None:
    wake()


async def emit(
    tx: Transaction, type: str, data: dict[str, Any], *, team_id: uuid.UUID | None = None
) -> OutboxEvent | None:
    """Writes one event in `tx`; None when notifications are off."""
    if not enabled:
        return None
    event = await OutboxEvent.create(
        type=type, team_id=team_id, data=data, created_at=clock.now(), using_db=tx.conn
    )
    if _wake not in tx._callbacks:
        tx.after(_wake)
    return event
