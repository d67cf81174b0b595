"""Credits through the services, below the API: setup for tests about what follows from it."""

from __future__ import annotations

import uuid
from datetime import datetime

from app.credits import service as credits_service
from app.credits.models import CreditKind
from app.kit.money import parse


def units(amount: str) -> int:
    """An amount such as "12.50" in the ledger's units (zero allowed)."""
    return parse(amount, allow_zero=True)


async def use(team_id: uuid.UUID, amount: str, key: str | None = None) -> bool:
    """Records one usage event; whether it was accepted."""
    request = credits_service.UsageRequest(
        team_id=team_id, amount=units(amount), idempotency_key=key or uuid.uuid4().hex
    )
    (result,) = await credits_service.record_usage([request])
    return result.record is not None


async def give(team_id: uuid.UUID, amount: str, expires_at: datetime | None = None) -> None:
    """Grants free credits."""
    await credits_service.grant_credits(
        team_id, CreditKind.FREE, units(amount), expires_at=expires_at
    )
