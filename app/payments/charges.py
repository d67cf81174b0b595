"""Creating a PaymentIntent: the one call that charges a customer, and what it came to.

Purchases (on and off session) and invoice collection all charge through
`create_payment`; its result names every way a charge ends, Stripe being out of
reach included, so no caller compares message texts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

import structlog

from app.kit.errors import DomainError, ErrorCode
from app.payments.customers import ensure_customer
from app.payments.gateway import UNAVAILABLE_MESSAGE, gateway
from app.payments.methods import default_payment_method
from app.payments.models import PaymentMethodType
from app.payments.stripe import (
    PaymentDeclined,
    PaymentGatewayError,
    PaymentIntentResult,
    StripeUnavailable,
)

log = structlog.get_logger(__name__)

AUTHENTICATION_MESSAGE = "The bank asks the cardholder to authenticate."


class ChargeStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    PROCESSING = "PROCESSING"  # a bank debit under way: neither paid nor failed yet
    REQUIRES_ACTION = "REQUIRES_ACTION"  # 3-D Secure: the cardholder must confirm
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNAVAILABLE = "UNAVAILABLE"  # Stripe not reached: whether it charged is unknown


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    payment_intent_id: str | None = None
    failure_message: str | None = None
    client_secret: str | None = None
    # Our PaymentMethod charged (set by `charge_default_method_off_session`).
    payment_method_id: uuid.UUID | None = None


def result_of_intent(intent: PaymentIntentResult) -> ChargeResult:
    """What a PaymentIntent's status means for the charge."""
    if intent.status == "succeeded":
        return ChargeResult(ChargeStatus.SUCCEEDED, intent.id)
    if intent.status in ("requires_action", "requires_confirmation"):
        return ChargeResult(
            ChargeStatus.REQUIRES_ACTION,
            intent.id,
            AUTHENTICATION_MESSAGE,
            client_secret=intent.client_secret,
        )
    if intent.status == "requires_payment_method":
        reason = intent.last_payment_error_message or "The payment failed."
        return ChargeResult(ChargeStatus.FAILED, intent.id, reason)
    if intent.status == "canceled":
        return ChargeResult(ChargeStatus.CANCELED, intent.id, "The payment was canceled.")
    return ChargeResult(ChargeStatus.PROCESSING, intent.id)


async def create_payment(
    amount_cents: int,
    customer: str,
    payment_method: str,
    method_type: PaymentMethodType,
    *,
    off_session: bool,
    metadata: dict[str, str],
    idempotency_key: str,
) -> ChargeResult:
    """Charges `payment_method`; Stripe's refusals and absence come back as results."""
    result = await _create_payment(
        amount_cents,
        customer,
        payment_method,
        method_type,
        off_session=off_session,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    if result.status in (ChargeStatus.FAILED, ChargeStatus.CANCELED, ChargeStatus.UNAVAILABLE):
        # Expected refusals (a declined card, Stripe away): one line, never a traceback.
        log.info(
            "payments.charge_refused",
            status=result.status.value,
            payment_intent=result.payment_intent_id,
            reason=(result.failure_message or "")[:200],
            off_session=off_session,
        )
    return result


async def _create_payment(
    amount_cents: int,
    customer: str,
    payment_method: str,
    method_type: PaymentMethodType,
    *,
    off_session: bool,
    metadata: dict[str, str],
    idempotency_key: str,
) -> ChargeResult:
    try:
        intent = await gateway().create_payment_intent(
            amount_cents,
            customer,
            payment_method,
            off_session=off_session,
            payment_method_types=(
                ["card"] if method_type is PaymentMethodType.CARD else ["us_bank_account"]
            ),
            metadata=metadata,
            idempotency_key=idempotency_key,
        )
    except PaymentDeclined as error:
        return ChargeResult(ChargeStatus.FAILED, error.payment_intent_id, error.message)
    except StripeUnavailable:
        return ChargeResult(ChargeStatus.UNAVAILABLE, None, UNAVAILABLE_MESSAGE)
    except PaymentGatewayError as error:
        return ChargeResult(ChargeStatus.FAILED, None, f"Stripe refused the payment: {error}")
    return result_of_intent(intent)


async def charge_default_method_off_session(
    team_id: uuid.UUID,
    amount_cents: int,
    *,
    idempotency_key: str,
    description: str,
    metadata: dict[str, str],
) -> ChargeResult:
    """Charges the team's default method without the customer present (monthly close).

    Raises DomainError PAYMENT_METHOD_REQUIRED without a default method, and
    PAYMENT_PROVIDER_UNAVAILABLE when the customer cannot be created.
    """
    method = await default_payment_method(team_id)
    if method is None:
        raise DomainError(
            ErrorCode.PAYMENT_METHOD_REQUIRED, "No default payment method on file.", None
        )
    customer = await ensure_customer(team_id)
    result = await create_payment(
        amount_cents,
        customer,
        method.stripe_id,
        method.type,
        off_session=True,
        metadata={**metadata, "team_id": str(team_id), "description": description[:500]},
        idempotency_key=idempotency_key,
    )
    return replace(result, payment_method_id=method.id)
