"""The billing rules as pure functions: one place for each (docs/architecture.md)."""

from __future__ import annotations

from enum import StrEnum

from app.kit.errors import DomainError, ErrorCode


class BillingStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CREDITS_EXHAUSTED = "CREDITS_EXHAUSTED"
    INVOICED_LIMIT_REACHED = "INVOICED_LIMIT_REACHED"


def invoiced_headroom(limit: int, used: int, suspended: bool) -> int:
    """What the month may still invoice: none while suspended, never below zero."""
    if suspended:
        return 0
    return max(limit - used, 0)


def refusal(limit: int) -> DomainError:
    """Why usage that fits in neither credits nor headroom is refused."""
    if limit == 0:
        return DomainError(
            ErrorCode.CREDITS_EXHAUSTED, "Not enough credits for this usage.", "amount"
        )
    return DomainError(
        ErrorCode.INVOICED_LIMIT_REACHED,
        "Not enough credits and the invoiced spending limit is reached.",
        "amount",
    )


def billing_status(total: int, limit: int, headroom: int) -> BillingStatus:
    """ACTIVE while credits or headroom remain; otherwise the reason usage is refused."""
    if total > 0:
        return BillingStatus.ACTIVE
    if limit == 0:
        return BillingStatus.CREDITS_EXHAUSTED
    if headroom > 0:
        return BillingStatus.ACTIVE
    return BillingStatus.INVOICED_LIMIT_REACHED
