"""The hold rows the locked section reads and writes: due expiries, what is held now.

Below `credits.service` (which expires a team's due holds whenever it locks the team's
account) and `credits.holds` (creating, capturing and releasing them); see docs/holds.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Sum

from app.credits.models import Hold, HoldStatus


@dataclass(frozen=True, slots=True)
class HoldsExpired:
    """Announced after the commit that expired a team's holds (for notifications)."""

    team_id: uuid.UUID
    hold_ids: tuple[uuid.UUID, ...]


async def due(
    conn: BaseDBAsyncClient, team_ids: Sequence[uuid.UUID], now: datetime
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """(id, team id, amount) of the teams' HELD holds whose expiry has come."""
    rows = (
        await Hold.filter(team_id__in=list(team_ids), status=HoldStatus.HELD, expires_at__lte=now)
        .using_db(conn)
        .values_list("id", "team_id", "amount")
    )
    return [(_uuid(hold_id), _uuid(team_id), int(amount)) for hold_id, team_id, amount in rows]


async def mark_expired(
    conn: BaseDBAsyncClient,
    team_ids: Sequence[uuid.UUID],
    hold_ids: Sequence[uuid.UUID],
    now: datetime,
) -> None:
    """Writes the EXPIRED status of holds `due` returned (the account's `held` goes with
    the account row). `team_ids`: the holds' teams, so the key (team_id, id) finds them."""
    await (
        Hold.filter(team_id__in=list(team_ids), id__in=list(hold_ids), status=HoldStatus.HELD)
        .using_db(conn)
        .update(status=HoldStatus.EXPIRED, updated_at=now)
    )


async def open_amount(conn: BaseDBAsyncClient, team_id: uuid.UUID, now: datetime) -> int:
    """What the team's HELD holds reserve now, those past their expiry left out (a read
    without the lock: the next locked write expires them)."""
    rows = (
        await Hold.filter(team_id=team_id, status=HoldStatus.HELD, expires_at__gt=now)
        .using_db(conn)
        .annotate(total=Sum("amount"))
        .values("total")
    )
    # SUM(bigint) is numeric on PostgreSQL (a Decimal), NULL when there is no row.
    return int(rows[0]["total"] or 0) if rows else 0


def _uuid(value: object) -> uuid.UUID:
    # values_list hands UUIDs back as uuid.UUID on PostgreSQL and as text on SQLite.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
