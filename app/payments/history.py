"""Reading purchases: a team's history, newest first, in cursor pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tortoise.expressions import Q

from app.kit.pagination import decode_time_cursor, encode_time_cursor, page_size
from app.payments.models import Purchase


@dataclass(frozen=True, slots=True)
class PurchasePage:
    purchases: list[Purchase]
    has_next_page: bool
    cursors: list[str] = field(default_factory=list)


def purchase_cursor(purchase: Purchase) -> str:
    return encode_time_cursor(purchase.created_at, purchase.id)


async def purchase_page(team_id: uuid.UUID, first: int, after: str | None) -> PurchasePage:
    """Newest first; `after` is the cursor of the last purchase already seen."""
    first = page_size(first)
    query = Purchase.filter(team_id=team_id)
    if after:
        created_at, last_id = decode_time_cursor(after)
        query = query.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=last_id)
        )
    rows = await query.order_by("-created_at", "-id").limit(first + 1)
    page = rows[:first]
    return PurchasePage(page, len(rows) > first, [purchase_cursor(p) for p in page])
