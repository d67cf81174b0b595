"""The billing rules of the usage gate, one pure function each (no database).

Credits (free, promotional, prepaid) are drawn first; past them a team may run up
invoiced usage to its monthly limit, unless invoicing is suspended. These functions
decide with amounts the caller already has (units of 1e-8 USD); see
docs/architecture.md, "Billing rules".
"""

from __future__ import annotations

from enum import StrEnum

from app.kit.errors import DomainError, ErrorCode
from app.kit.money import MAX_BALANCE, format_units


class BillingStatus(StrEnum):
    """Whether a team's next usage can be drawn, and if not, why."""

    ACTIVE = "ACTIVE"
    CREDITS_EXHAUSTED = "CREDITS_EXHAUSTED"
    INVOICED_LIMIT_REACHED = "INVOICED_LIMIT_REACHED"


def invoiced_headroom(limit: int, used: int, suspended: bool) -> int:
    """Invoiced usage still allowed this month: none while suspended, never negative
    (a lowered limit can sit below what was already used)."""
    if suspended:
        return 0
    return max(limit - used, 0)


def available(credits: int, headroom: int, held: int) -> int:
    """What usage or a new hold may still take: credits and invoiced headroom, less what
    open holds reserve (so held money is never available twice); never below 0."""
    return max(credits + headroom - held, 0)


def refusal(limit: int) -> DomainError:
    """The error for usage that credits and invoiced headroom cannot cover."""
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
    """ACTIVE while credits or invoiced headroom remain; otherwise why usage is refused.

    `total` is the credits left, `headroom` what `invoiced_headroom` gives.
    """
    if total > 0:
        return BillingStatus.ACTIVE
    if limit == 0:
        return BillingStatus.CREDITS_EXHAUSTED
    if headroom > 0:
        return BillingStatus.ACTIVE
    return BillingStatus.INVOICED_LIMIT_REACHED


def balance_room(total: int, amount: int, field: str = "amount") -> DomainError | None:
    """INVALID_AMOUNT when adding `amount` would take the team's credits past
    `MAX_BALANCE` (docs/inputs.md, "Money"); None when it fits."""
    if total + amount <= MAX_BALANCE:
        return None
    room = max(MAX_BALANCE - total, 0)
    return DomainError(
        ErrorCode.INVALID_AMOUNT,
        f"A team's credits are at most {format_units(MAX_BALANCE)}: "
        f"at most {format_units(room)} more fits.",
        field,
    )
