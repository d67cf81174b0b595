"""Writing and reading the audit trail.

Callers record inside the transaction that makes the change (pass its connection), so
a change and its audit event commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app.kit import clock
from app.kit.pagination import decode_cursor, encode_cursor, page_size
from app.teams.audit.models import AuditAction, AuditEvent

SYSTEM = "system"
MAX_ACTOR = 400


def actor_name(email: str, *, operator: bool = False) -> str:
    """How a signed-in user appears in the trail."""
    return f"{email} (operator)" if operator else email


async def record(
    conn: BaseDBAsyncClient | None,
    team_id: uuid.UUID,
    actor: str,
    action: AuditAction,
    old: Any,
    new: Any,
) -> AuditEvent:
    """Appends one event; `old`/`new` are JSON-able values (None: nothing before/after)."""
    event = AuditEvent(
        team_id=team_id,
        actor=(actor or SYSTEM)[:MAX_ACTOR],
        action=action,
        old=old,
        new=new,
        created_at=clock.now(),
    )
    await event.save(using_db=conn)
    return event


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    has_next_page: bool
    end_cursor: str | None


def cursor(event: AuditEvent) -> str:
    return encode_cursor("audit", event.id)


async def events(team_id: uuid.UUID, first: int | None = 20, after: str | None = None) -> AuditPage:
    """A team's events, newest first; `after` is the `end_cursor` of the previous page."""
    size = page_size(first)
    query = AuditEvent.filter(team_id=team_id)
    if after:
        kind, raw_id = decode_cursor(after, 2)
        if kind != "audit" or not raw_id.isdigit():
            decode_cursor("", 2)  # raises the same INVALID_INPUT as any bad cursor
        query = query.filter(id__lt=int(raw_id))
    rows = await query.order_by("-id").limit(size + 1)
    page = rows[:size]
    return AuditPage(
        events=page,
        has_next_page=len(rows) > size,
        end_cursor=cursor(page[-1]) if page else None,
    )
