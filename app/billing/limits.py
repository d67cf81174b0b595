"""The invoiced spending limit: raising it above $0 needs a payment method on file."""

from __future__ import annotations

import uuid

from app.credits import service as credits
from app.kit.errors import DomainError, ErrorCode
from app.payments.methods import has_payment_method
from app.teams.audit import service as audit


async def set_invoiced_limit(team_id: uuid.UUID, limit: int, *, actor: str = audit.SYSTEM) -> None:
    """Sets the team's monthly invoiced limit (units). Invoiced billing charges a payment
    method at the month's end, so a limit above $0 needs one on file first."""
    if 0 < limit <= credits.MAX_INVOICED_LIMIT and not await has_payment_method(team_id):
        raise DomainError(
            ErrorCode.PAYMENT_METHOD_REQUIRED,
            "Add a payment method before raising the invoiced spending limit.",
            "limit",
        )
    await credits.set_invoiced_limit(team_id, limit, actor=actor)
