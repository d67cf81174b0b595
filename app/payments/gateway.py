"""The process's Stripe gateway, and how its failures read to a customer.

One `StripeGateway` per process, made by the lifespan, the CLI or the tests
(`init_gateway`), so every caller shares its connection pool and settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from app.config import Settings
from app.kit.errors import DomainError, ErrorCode
from app.payments.stripe import (
    InvalidPaymentMethod,
    PaymentDeclined,
    PaymentGatewayError,
    StripeGateway,
    StripeUnavailable,
)

log = structlog.get_logger(__name__)

UNAVAILABLE_MESSAGE = "The payment provider could not be reached. Try again in a moment."


@dataclass
class _State:
    gateway: StripeGateway | None = None
    purchase_min_cents: int = 500
    purchase_max_cents: int = 10_000_000


_state = _State()


def init_gateway(settings: Settings) -> StripeGateway:
    """Creates the process's Stripe client (app lifespan, CLI, tests); `close_gateway()` ends it."""
    if not settings.stripe_api_key:
        # No key: every call fails as "unavailable" instead of the process refusing to start.
        log.warning("payments.no_stripe_api_key")
    _state.gateway = StripeGateway(
        settings.stripe_api_key or "sk_not_configured",
        settings.stripe_api_base or None,
        settings.stripe_max_network_retries,
    )
    _state.purchase_min_cents = settings.purchase_min_cents
    _state.purchase_max_cents = settings.purchase_max_cents
    return _state.gateway


def gateway() -> StripeGateway:
    """The process's gateway; `init_gateway(settings)` must have run."""
    if _state.gateway is None:
        raise RuntimeError("payments.gateway.init_gateway(settings) has not been called")
    return _state.gateway


def set_gateway(value: StripeGateway) -> StripeGateway:
    """Swaps the gateway (tests fake Stripe's answers at this boundary); returns the old one."""
    old = gateway()
    _state.gateway = value
    return old


async def close_gateway() -> None:
    current, _state.gateway = _state.gateway, None
    if current is not None:
        await current.aclose()


def purchase_bounds() -> tuple[int, int]:
    """The smallest and largest purchase in cents (from settings)."""
    return _state.purchase_min_cents, _state.purchase_max_cents


def domain_error(error: PaymentGatewayError, field: str | None = None) -> DomainError:
    """What a customer reads when Stripe refused or could not be reached."""
    if isinstance(error, PaymentDeclined):
        return DomainError(ErrorCode.PAYMENT_FAILED, error.message, field)
    if isinstance(error, StripeUnavailable):
        return DomainError(ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE, UNAVAILABLE_MESSAGE)
    if isinstance(error, InvalidPaymentMethod):
        return DomainError(
            ErrorCode.INVALID_INPUT, f"Stripe refused this payment method: {error}", field
        )
    return DomainError(ErrorCode.PAYMENT_FAILED, f"Stripe refused the request: {error}", field)
