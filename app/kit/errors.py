"""Domain errors raised by services; the GraphQL layer maps them to UserErrors."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    CREDITS_EXHAUSTED = "CREDITS_EXHAUSTED"
    INVOICED_LIMIT_REACHED = "INVOICED_LIMIT_REACHED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    PAYMENT_METHOD_REQUIRED = "PAYMENT_METHOD_REQUIRED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    LAST_PAYMENT_METHOD = "LAST_PAYMENT_METHOD"
    PROMO_CODE_INVALID = "PROMO_CODE_INVALID"
    PROMO_CODE_EXPIRED = "PROMO_CODE_EXPIRED"
    PROMO_CODE_ALREADY_REDEEMED = "PROMO_CODE_ALREADY_REDEEMED"
    PROMO_CODE_EXHAUSTED = "PROMO_CODE_EXHAUSTED"
    PROMO_CODE_EXISTS = "PROMO_CODE_EXISTS"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    PERIOD_CLOSED = "PERIOD_CLOSED"
    BILLING_SUSPENDED = "BILLING_SUSPENDED"
    PAYMENT_PROVIDER_UNAVAILABLE = "PAYMENT_PROVIDER_UNAVAILABLE"
    HOLD_CLOSED = "HOLD_CLOSED"  # captured, released or expired: it can no longer change
    # One event of a batch the database refused for a reason no check foresaw: logged with
    # an id, nothing of it stored, the batch's other events unaffected.
    INTERNAL = "INTERNAL"


class DomainError(Exception):
    """A rule the request broke; becomes a `UserError` with `code` and `field`."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(Exception):
    """The object does not exist or the viewer may not see it (top-level NOT_FOUND)."""


class Forbidden(Exception):
    """The viewer may see the object but not do this (top-level FORBIDDEN)."""


class Unauthenticated(Exception):
    """No valid bearer token (top-level UNAUTHENTICATED)."""
