"""Credit purchase requests: checking them, choosing what pays, starting the charge.

`start_purchase` and `start_off_session` store the purchase and charge it; they
return the purchase with Stripe's outcome, which `app.billing.purchases` applies
(crediting the team and issuing the invoice in one transaction). A replayed
idempotency key returns the first purchase and no outcome.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass

from tortoise.exceptions import IntegrityError

from app.credits import rules
from app.credits import service as credits
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import InvalidAmount, cents_to_units, format_units, units_to_cents_exact
from app.payments.charges import create_payment
from app.payments.customers import ensure_customer
from app.payments.gateway import purchase_bounds
from app.payments.methods import attach, live_method, payment_methods
from app.payments.models import (
    PaymentMethod,
    PaymentMethodType,
    Purchase,
    PurchaseMethod,
    PurchaseStatus,
)
from app.payments.settlement import BANK_SETTLEMENT_BUSINESS_DAYS, Outcome, outcome_of_charge
from app.payments.stripe import PaymentMethodInfo

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True, slots=True)
class Started:
    """A purchase and, unless it was a replay, what Stripe said when it was charged."""

    purchase: Purchase
    outcome: Outcome | None
    new_card: str | None = None  # a card attached for this purchase only (not yet on file)


@dataclass(frozen=True, slots=True)
class _Payer:
    """What pays: a method on file, or one just attached from Stripe.js (`new`)."""

    stripe_id: str
    type: PaymentMethodType
    saved: PaymentMethod | None = None
    new: PaymentMethodInfo | None = None


def _check_amount(amount: int) -> int:
    """The amount in cents, within the configured bounds."""
    try:
        cents = units_to_cents_exact(amount)
    except InvalidAmount as error:
        raise DomainError(ErrorCode.INVALID_AMOUNT, str(error), "amount") from None
    low, high = purchase_bounds()
    if not low <= cents <= high:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT,
            f"A purchase is between {format_units(cents_to_units(low))} "
            f"and {format_units(cents_to_units(high))}.",
            "amount",
        )
    return cents


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"The idempotency key takes 1 to {MAX_IDEMPOTENCY_KEY} characters.",
            "idempotencyKey",
        )
    return key


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


async def _replay(team_id: uuid.UUID, key: str | None, request_hash: str) -> Purchase | None:
    """The purchase an idempotency key already made; refused if it asked for something else."""
    if key is None:
        return None
    existing = await Purchase.get_or_none(team_id=team_id, idempotency_key=key)
    if existing is not None and existing.request_hash != request_hash:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was used for another purchase.",
            "idempotencyKey",
        )
    return existing


def _wanted_type(method: PurchaseMethod) -> PaymentMethodType:
    if method is PurchaseMethod.CARD:
        return PaymentMethodType.CARD
    return PaymentMethodType.BANK_ACCOUNT


async def _saved_payer(
    team_id: uuid.UUID, method: PurchaseMethod, payment_method_id: str | None
) -> _Payer:
    wanted = _wanted_type(method)
    if payment_method_id is not None:
        saved = await live_method(team_id, payment_method_id)
        if saved.type is not wanted:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "A card pays by CARD, a bank account by BANK_TRANSFER.",
                "paymentMethodId",
            )
    else:
        # The default when it fits, else the newest method of the right type.
        candidates = [m for m in await payment_methods(team_id) if m.type is wanted]
        if not candidates:
            what = "card" if wanted is PaymentMethodType.CARD else "bank account"
            raise DomainError(
                ErrorCode.PAYMENT_METHOD_REQUIRED,
                f"Add a {what} first.",
                "paymentMethodId",
            )
        saved = candidates[0]
    return _Payer(stripe_id=saved.stripe_id, type=saved.type, saved=saved)


async def _new_card_payer(
    team_id: uuid.UUID, customer: str, stripe_payment_method_id: str
) -> _Payer:
    info = await attach(customer, stripe_payment_method_id, "stripePaymentMethodId")
    if info.type != "card":
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "A bank account pays by BANK_TRANSFER, once saved.",
            "stripePaymentMethodId",
        )
    saved = await PaymentMethod.get_or_none(team_id=team_id, stripe_id=info.id, removed_at=None)
    if saved is not None:
        return _Payer(stripe_id=saved.stripe_id, type=saved.type, saved=saved)
    return _Payer(stripe_id=info.id, type=PaymentMethodType.CARD, new=info)


async def start_purchase(
    team_id: uuid.UUID,
    amount: int,
    *,
    method: PurchaseMethod = PurchaseMethod.CARD,
    payment_method_id: str | None = None,
    stripe_payment_method_id: str | None = None,
    idempotency_key: str | None = None,
) -> Started:
    """An admin's purchase, on session: stored, then charged (see `Started`)."""
    cents = _check_amount(amount)
    key = _check_key(idempotency_key)
    request_hash = _fingerprint(
        "purchaseCredits", amount, method, payment_method_id, stripe_payment_method_id
    )
    replay = await _replay(team_id, key, request_hash)
    if replay is not None:
        return Started(replay, None)
    # Checked before the charge; a paid purchase always credits (docs/inputs.md, "Money").
    refused = rules.balance_room((await credits.credits_view(team_id)).total, amount)
    if refused is not None:
        raise refused
    if payment_method_id is not None and stripe_payment_method_id is not None:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "Give paymentMethodId or stripePaymentMethodId, not both.",
            "stripePaymentMethodId",
        )
    if stripe_payment_method_id is not None and method is PurchaseMethod.BANK_TRANSFER:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "A bank transfer uses a saved bank account (paymentMethodId).",
            "stripePaymentMethodId",
        )
    customer = await ensure_customer(team_id)
    if stripe_payment_method_id is not None:
        payer = await _new_card_payer(team_id, customer, stripe_payment_method_id)
    else:
        payer = await _saved_payer(team_id, method, payment_method_id)
    return await _run_purchase(
        team_id,
        customer,
        amount,
        cents,
        method,
        payer,
        # A card is charged with the admin present (3-D Secure possible); an ACH debit runs
        # on the mandate the bank account was saved with, which Stripe treats as off-session.
        off_session=method is PurchaseMethod.BANK_TRANSFER,
        key=key,
        request_hash=request_hash,
        reason=None,
    )


async def start_off_session(
    team_id: uuid.UUID, amount_units: int, *, idempotency_key: str, reason: str
) -> Started:
    """A merchant-initiated card purchase (auto top-up): the default card, or the newest card.

    Raises DomainError
    PAYMENT_METHOD_REQUIRED without a card on file, INVALID_AMOUNT out of bounds, and
    IDEMPOTENCY_KEY_REUSED when the key made a different purchase.
    """
    cents = _check_amount(amount_units)
    key = _check_key(idempotency_key)
    request_hash = _fingerprint("offSession", amount_units, reason)
    replay = await _replay(team_id, key, request_hash)
    if replay is not None:
        return Started(replay, None)
    payer = await _saved_payer(team_id, PurchaseMethod.CARD, None)
    customer = await ensure_customer(team_id)
    return await _run_purchase(
        team_id,
        customer,
        amount_units,
        cents,
        PurchaseMethod.CARD,
        payer,
        off_session=True,
        key=key,
        request_hash=request_hash,
        reason=reason[:100],
    )


async def _run_purchase(
    team_id: uuid.UUID,
    customer: str,
    amount: int,
    cents: int,
    method: PurchaseMethod,
    payer: _Payer,
    *,
    off_session: bool,
    key: str | None,
    request_hash: str,
    reason: str | None,
) -> Started:
    now = clock.now()
    purchase = Purchase(
        id=uuid.uuid4(),
        team_id=team_id,
        amount=amount,
        method=method,
        # PROCESSING until Stripe answers: the payment is under way.
        status=PurchaseStatus.PROCESSING,
        payment_method_id=payer.saved.id if payer.saved else None,
        pending_payment_method=asdict(payer.new) if payer.new else None,
        off_session=off_session,
        reason=reason,
        idempotency_key=key,
        request_hash=request_hash,
        expected_settlement_at=(
            clock.add_business_days(now, BANK_SETTLEMENT_BUSINESS_DAYS)
            if method is PurchaseMethod.BANK_TRANSFER
            else None
        ),
        created_at=now,
        updated_at=now,
    )
    try:
        await purchase.save(force_create=True)
    except IntegrityError:
        # The same idempotency key raced us: answer with the purchase that won.
        replay = await _replay(team_id, key, request_hash)
        if replay is None:
            raise
        return Started(replay, None)
    charge = await create_payment(
        cents,
        customer,
        payer.stripe_id,
        payer.type,
        off_session=off_session,
        metadata={
            "purchase_id": str(purchase.id),
            "team_id": str(team_id),
            "kind": "credit_purchase",
        },
        idempotency_key=f"purchase:{purchase.id}:confirm",
    )
    return Started(purchase, outcome_of_charge(charge), payer.new.id if payer.new else None)
