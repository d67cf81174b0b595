"""Payment methods, credit purchases and their settlement (DESIGN.md billing rules 4 and 5).

Every purchase state change runs in one transaction that locks the team's account row
first (`credits.service.lock_account`) and then the purchase row, and moves the status
only forward (`_ALLOWED`). So the synchronous confirm and any number of webhook
deliveries, in any order and at the same time, credit a purchase exactly once.
Stripe is never called inside a transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.audit import service as audit
from app.audit.models import AuditAction
from app.config import Settings
from app.credits import service as credits
from app.credits.models import CreditAccount, CreditKind
from app.events import bus
from app.invoices import service as invoices
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.ids import parse_uuid
from app.kit.money import InvalidAmount, cents_to_units, format_units, units_to_cents_exact
from app.payments.models import (
    PaymentMethod,
    PaymentMethodType,
    Purchase,
    PurchaseMethod,
    PurchaseStatus,
    StripeCustomer,
)
from app.payments.stripe import (
    InvalidPaymentMethod,
    PaymentDeclined,
    PaymentGatewayError,
    PaymentIntentResult,
    PaymentMethodInfo,
    SetupIntentResult,
    StripeGateway,
    StripeUnavailable,
)
from app.teams.models import Membership, Role, Team

log = structlog.get_logger(__name__)

MAX_IDEMPOTENCY_KEY = 255
MAX_PAGE = 100
BANK_SETTLEMENT_BUSINESS_DAYS = 3
UNAVAILABLE_MESSAGE = "The payment provider could not be reached. Try again in a moment."


# --- the gateway of this process ------------------------------------------------------------


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
        raise RuntimeError("payments.init_gateway(settings) has not been called")
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


def _domain_error(error: PaymentGatewayError, field: str | None = None) -> DomainError:
    if isinstance(error, PaymentDeclined):
        return DomainError(ErrorCode.PAYMENT_FAILED, error.message, field)
    if isinstance(error, StripeUnavailable):
        return DomainError(ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE, UNAVAILABLE_MESSAGE)
    if isinstance(error, InvalidPaymentMethod):
        return DomainError(
            ErrorCode.INVALID_INPUT, f"Stripe refused this payment method: {error}", field
        )
    return DomainError(ErrorCode.PAYMENT_FAILED, f"Stripe refused the request: {error}", field)


# --- customers -------------------------------------------------------------------------------


async def ensure_customer(team_id: uuid.UUID) -> str:
    """The team's Stripe customer id, created on first need (one per team)."""
    row = await StripeCustomer.get_or_none(team_id=team_id)
    if row is not None:
        return row.stripe_id
    team = await Team.get_or_none(id=team_id)
    if team is None:
        raise NotFound()
    admin = (
        await Membership.filter(team_id=team_id, role=Role.ADMIN)
        .order_by("created_at")
        .prefetch_related("user")
        .first()
    )
    try:
        stripe_id = await gateway().create_customer(
            str(team_id),
            team.name,
            admin.user.email if admin else None,
            idempotency_key=f"team:{team_id}:customer",
        )
    except PaymentGatewayError as error:
        raise _domain_error(error) from error
    try:
        await StripeCustomer.create(team_id=team_id, stripe_id=stripe_id, created_at=clock.now())
    except IntegrityError:
        # A concurrent first need won; Stripe's idempotency key made it the same customer
        # (an emulator that ignores keys leaves an unused one behind).
        return (await StripeCustomer.get(team_id=team_id)).stripe_id
    return stripe_id


async def _customer_of(team_id: uuid.UUID) -> str | None:
    row = await StripeCustomer.get_or_none(team_id=team_id)
    return row.stripe_id if row else None


# --- payment methods --------------------------------------------------------------------------


async def _lock_team(team_id: uuid.UUID, conn: BaseDBAsyncClient) -> None:
    """Locks the team's account row: the one lock every billing change of a team takes first."""
    account = await CreditAccount.select_for_update().using_db(conn).get_or_none(team_id=team_id)
    if account is None:
        raise NotFound()


async def payment_methods(team_id: uuid.UUID) -> list[PaymentMethod]:
    """The methods on file: the default first, then newest first."""
    return (
        await PaymentMethod.filter(team_id=team_id, removed_at=None)
        .order_by("-is_default", "-created_at", "-id")
        .all()
    )


async def has_payment_method(team_id: uuid.UUID) -> bool:
    return await PaymentMethod.exists(team_id=team_id, removed_at=None)


async def default_payment_method(team_id: uuid.UUID) -> PaymentMethod | None:
    return await PaymentMethod.get_or_none(team_id=team_id, removed_at=None, is_default=True)


async def _live_method(team_id: uuid.UUID, payment_method_id: object) -> PaymentMethod:
    parsed = parse_uuid(payment_method_id)
    method = (
        await PaymentMethod.get_or_none(id=parsed, team_id=team_id, removed_at=None)
        if parsed
        else None
    )
    if method is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such payment method.", "paymentMethodId")
    return method


async def create_setup_intent(team_id: uuid.UUID, type: PaymentMethodType) -> SetupIntentResult:
    """A SetupIntent whose client secret Stripe.js confirms (card, or US bank account)."""
    customer = await ensure_customer(team_id)
    types = ["card"] if type is PaymentMethodType.CARD else ["us_bank_account"]
    try:
        return await gateway().create_setup_intent(customer, types)
    except PaymentGatewayError as error:
        if isinstance(error, StripeUnavailable):
            raise _domain_error(error) from error
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"Stripe refused the setup: {error}", "type"
        ) from error


def _check_stripe_id(value: str, field: str) -> str:
    value = value.strip()
    if not value.startswith("pm_") or len(value) > 255 or not value.isascii():
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a Stripe payment method id.", field)
    return value


async def _attach(customer: str, stripe_payment_method_id: str, field: str) -> PaymentMethodInfo:
    """The method, attached to `customer` (Stripe.js may leave it unattached)."""
    pm_id = _check_stripe_id(stripe_payment_method_id, field)
    try:
        info = await gateway().retrieve_payment_method(pm_id)
        if info.customer is None:
            # Attach the looked-up id: a test id like pm_card_visa is a new object each time.
            info = await gateway().attach_payment_method(info.id, customer)
    except InvalidPaymentMethod as error:
        raise DomainError(ErrorCode.INVALID_INPUT, "No such payment method.", field) from error
    except PaymentGatewayError as error:
        raise _domain_error(error, field) from error
    if info.customer != customer:
        # Someone else's method answers like an unknown one.
        raise DomainError(ErrorCode.INVALID_INPUT, "No such payment method.", field)
    return info


def _method_type(info: PaymentMethodInfo) -> PaymentMethodType:
    return PaymentMethodType.CARD if info.type == "card" else PaymentMethodType.BANK_ACCOUNT


async def save_method_locked(
    conn: BaseDBAsyncClient,
    team_id: uuid.UUID,
    info: PaymentMethodInfo,
    make_default: bool | None,
    *,
    actor: str = audit.SYSTEM,
) -> tuple[PaymentMethod, bool]:
    """Puts a method on file (the team's account row is locked by the caller).

    The first live method becomes the default. Returns the row and whether it became
    the default just now. Saving a method already on file changes nothing else.
    """
    now = clock.now()
    existing = await PaymentMethod.filter(stripe_id=info.id).using_db(conn).first()
    if existing is not None and existing.team_id != team_id:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "No such payment method.", "stripePaymentMethodId"
        )
    live = await PaymentMethod.filter(team_id=team_id, removed_at=None).using_db(conn)
    others = [m for m in live if existing is None or m.id != existing.id]
    was_on_file = existing is not None and existing.removed_at is None
    previous_default = next((m for m in others if m.is_default), None)
    if existing is not None and existing.removed_at is None:
        row = existing
        become_default = bool(make_default) and not row.is_default
    else:
        become_default = bool(make_default) or not any(m.is_default for m in others)
        row = existing or PaymentMethod(id=uuid.uuid4(), team_id=team_id, stripe_id=info.id)
        row.type = _method_type(info)
        row.brand = info.brand
        row.last4 = info.last4 or "????"
        row.exp_month = info.exp_month
        row.exp_year = info.exp_year
        row.created_at = now
        row.removed_at = None
        row.is_default = False
    if become_default:
        await (
            PaymentMethod.filter(team_id=team_id, is_default=True)
            .using_db(conn)
            .update(is_default=False)
        )
        row.is_default = True
    await row.save(using_db=conn)
    if not was_on_file:
        new = _audited_method(row)
        await audit.record(conn, team_id, actor, AuditAction.PAYMENT_METHOD_ADDED, None, new)
    elif become_default:
        old = _audited_method(previous_default) if previous_default else None
        action = AuditAction.DEFAULT_PAYMENT_METHOD_CHANGED
        await audit.record(conn, team_id, actor, action, old, _audited_method(row))
    return row, become_default


def _audited_method(method: PaymentMethod) -> dict[str, object]:
    return {
        "id": str(method.id),
        "type": method.type.value,
        "brand": method.brand,
        "last4": method.last4,
        "isDefault": method.is_default,
    }


async def _sync_default(team_id: uuid.UUID, stripe_id: str | None) -> None:
    """Mirrors our default at Stripe (invoice_settings); best effort: ours is what we charge."""
    customer = await _customer_of(team_id)
    if customer is None or stripe_id is None:
        return
    try:
        await gateway().set_default_payment_method(customer, stripe_id)
    except PaymentGatewayError as error:
        log.warning("payments.sync_default_failed", team_id=str(team_id), error=str(error))


async def _detach(stripe_id: str) -> None:
    try:
        await gateway().detach_payment_method(stripe_id)
    except PaymentGatewayError as error:
        log.warning("payments.detach_failed", payment_method=stripe_id, error=str(error))


async def add_payment_method(
    team_id: uuid.UUID,
    stripe_payment_method_id: str,
    *,
    make_default: bool | None = None,
    actor: str = audit.SYSTEM,
) -> PaymentMethod:
    """Attaches a method from Stripe.js to the team's customer and keeps it on file."""
    customer = await ensure_customer(team_id)
    info = await _attach(customer, stripe_payment_method_id, "stripePaymentMethodId")
    async with in_transaction() as conn:
        await _lock_team(team_id, conn)
        method, became_default = await save_method_locked(
            conn, team_id, info, make_default, actor=actor
        )
    if became_default:
        await _sync_default(team_id, method.stripe_id)
    return method


async def set_default_payment_method(
    team_id: uuid.UUID, payment_method_id: object, *, actor: str = audit.SYSTEM
) -> PaymentMethod:
    async with in_transaction() as conn:
        await _lock_team(team_id, conn)
        method = await _live_method(team_id, payment_method_id)
        if not method.is_default:
            previous = (
                await PaymentMethod.filter(team_id=team_id, is_default=True).using_db(conn).first()
            )
            await (
                PaymentMethod.filter(team_id=team_id, is_default=True)
                .using_db(conn)
                .update(is_default=False)
            )
            method.is_default = True
            await method.save(using_db=conn, update_fields=["is_default"])
            old = _audited_method(previous) if previous else None
            action = AuditAction.DEFAULT_PAYMENT_METHOD_CHANGED
            await audit.record(conn, team_id, actor, action, old, _audited_method(method))
    await _sync_default(team_id, method.stripe_id)
    return method


async def remove_payment_method(
    team_id: uuid.UUID, payment_method_id: object, *, actor: str = audit.SYSTEM
) -> uuid.UUID:
    """Takes a method off file (never the last one); removing the default promotes the newest."""
    async with in_transaction() as conn:
        await _lock_team(team_id, conn)
        method = await _live_method(team_id, payment_method_id)
        old = _audited_method(method)
        promoted = await _remove_locked(conn, team_id, method, allow_last=False)
        await audit.record(conn, team_id, actor, AuditAction.PAYMENT_METHOD_REMOVED, old, None)
    await _detach(method.stripe_id)
    if promoted is not None:
        await _sync_default(team_id, promoted.stripe_id)
    return method.id


async def _remove_locked(
    conn: BaseDBAsyncClient, team_id: uuid.UUID, method: PaymentMethod, *, allow_last: bool
) -> PaymentMethod | None:
    """Marks `method` removed; returns the method promoted to default, if any."""
    others = (
        await PaymentMethod.filter(team_id=team_id, removed_at=None)
        .exclude(id=method.id)
        .using_db(conn)
        .order_by("-created_at", "-id")
    )
    if not others and not allow_last:
        raise DomainError(
            ErrorCode.LAST_PAYMENT_METHOD,
            "The last payment method cannot be removed; add another one first.",
            "paymentMethodId",
        )
    was_default = method.is_default
    method.is_default = False
    method.removed_at = clock.now()
    await method.save(using_db=conn, update_fields=["is_default", "removed_at"])
    if was_default and others:
        newest = others[0]
        newest.is_default = True
        await newest.save(using_db=conn, update_fields=["is_default"])
        return newest
    return None


async def detached_at_stripe(
    conn: BaseDBAsyncClient, team_id: uuid.UUID, stripe_id: str
) -> tuple[bool, Effects]:
    """A method detached at Stripe (dashboard, API) leaves the file, even the last one.
    Returns whether it was on file."""
    effects = Effects(team_id)
    method = (
        await PaymentMethod.filter(team_id=team_id, stripe_id=stripe_id, removed_at=None)
        .using_db(conn)
        .first()
    )
    if method is None:
        return False, effects
    old = _audited_method(method)
    promoted = await _remove_locked(conn, team_id, method, allow_last=True)
    actor = f"{audit.SYSTEM}: detached at Stripe"
    await audit.record(conn, team_id, actor, AuditAction.PAYMENT_METHOD_REMOVED, old, None)
    if promoted is not None:
        effects.new_default = promoted.stripe_id
    return True, effects


# --- purchases: requests ------------------------------------------------------------------------


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
    low, high = _state.purchase_min_cents, _state.purchase_max_cents
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
        saved = await _live_method(team_id, payment_method_id)
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
    info = await _attach(customer, stripe_payment_method_id, "stripePaymentMethodId")
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


async def purchase_credits(
    team_id: uuid.UUID,
    amount: int,
    *,
    method: PurchaseMethod = PurchaseMethod.CARD,
    payment_method_id: str | None = None,
    stripe_payment_method_id: str | None = None,
    idempotency_key: str | None = None,
) -> Purchase:
    """An admin's purchase, on session. Returns the purchase: SUCCEEDED (credited),
    REQUIRES_ACTION (3-D Secure, `client_secret`), PROCESSING (bank transfer) or FAILED."""
    cents = _check_amount(amount)
    key = _check_key(idempotency_key)
    request_hash = _fingerprint(
        "purchaseCredits", amount, method, payment_method_id, stripe_payment_method_id
    )
    replay = await _replay(team_id, key, request_hash)
    if replay is not None:
        return replay
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


async def purchase_off_session(
    team_id: uuid.UUID, amount_units: int, *, idempotency_key: str, reason: str
) -> Purchase:
    """A merchant-initiated card purchase (auto top-up): the default card, or the newest card.

    Same settlement as `purchase_credits`. Returns the purchase whatever its outcome
    (SUCCEEDED / FAILED / PROCESSING / REQUIRES_ACTION); raises DomainError
    PAYMENT_METHOD_REQUIRED without a card on file, INVALID_AMOUNT out of bounds, and
    IDEMPOTENCY_KEY_REUSED when the key made a different purchase.
    """
    cents = _check_amount(amount_units)
    key = _check_key(idempotency_key)
    request_hash = _fingerprint("offSession", amount_units, reason)
    replay = await _replay(team_id, key, request_hash)
    if replay is not None:
        return replay
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
) -> Purchase:
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
        return replay
    try:
        intent = await gateway().create_payment_intent(
            cents,
            customer,
            payer.stripe_id,
            off_session=off_session,
            payment_method_types=(
                ["card"] if payer.type is PaymentMethodType.CARD else ["us_bank_account"]
            ),
            metadata={
                "purchase_id": str(purchase.id),
                "team_id": str(team_id),
                "kind": "credit_purchase",
            },
            idempotency_key=f"purchase:{purchase.id}:confirm",
        )
    except PaymentDeclined as error:
        outcome = Outcome(PurchaseStatus.FAILED, error.payment_intent_id, error.message)
    except StripeUnavailable:
        # Whether Stripe took it is unknown; if it did, its webhook still settles this purchase.
        outcome = Outcome(PurchaseStatus.FAILED, None, UNAVAILABLE_MESSAGE)
    except PaymentGatewayError as error:
        outcome = Outcome(PurchaseStatus.FAILED, None, f"Stripe refused the payment: {error}")
    else:
        outcome = outcome_of_intent(intent)
    purchase = await advance(purchase.id, outcome)
    if purchase.status is PurchaseStatus.FAILED and payer.new is not None:
        # A new card that did not pay is not kept on file.
        await _detach(payer.new.id)
    return purchase


# --- purchases: state changes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What Stripe reported about a purchase's PaymentIntent."""

    status: PurchaseStatus
    payment_intent_id: str | None = None
    failure_reason: str | None = None
    client_secret: str | None = None


def outcome_of_intent(intent: PaymentIntentResult) -> Outcome:
    if intent.status == "succeeded":
        return Outcome(PurchaseStatus.SUCCEEDED, intent.id)
    if intent.status in ("requires_action", "requires_confirmation"):
        return Outcome(
            PurchaseStatus.REQUIRES_ACTION, intent.id, client_secret=intent.client_secret
        )
    if intent.status == "requires_payment_method":
        reason = intent.last_payment_error_message or "The payment failed."
        return Outcome(PurchaseStatus.FAILED, intent.id, reason)
    if intent.status == "canceled":
        return Outcome(PurchaseStatus.CANCELED, intent.id, "The payment was canceled.")
    return Outcome(PurchaseStatus.PROCESSING, intent.id)


# Where a status may go. SUCCEEDED is final (money arrived); a success reported after a
# failure still wins (the customer paid on a retry), and nothing goes back to PROCESSING
# or REQUIRES_ACTION from an end state: so any delivery order ends where in-order does.
_ALLOWED: dict[PurchaseStatus, frozenset[PurchaseStatus]] = {
    PurchaseStatus.PROCESSING: frozenset(PurchaseStatus),
    PurchaseStatus.REQUIRES_ACTION: frozenset(PurchaseStatus),
    PurchaseStatus.FAILED: frozenset({PurchaseStatus.SUCCEEDED}),
    PurchaseStatus.CANCELED: frozenset({PurchaseStatus.SUCCEEDED}),
    PurchaseStatus.SUCCEEDED: frozenset(),
}


@dataclass
class Effects:
    """What to do once the transaction has committed (never inside it)."""

    team_id: uuid.UUID
    credits_changed: bool = False
    new_default: str | None = None  # a Stripe payment method id to mirror as Stripe's default

    async def run(self) -> None:
        if self.credits_changed:
            await bus.credits_changed(self.team_id)
        if self.new_default is not None:
            await _sync_default(self.team_id, self.new_default)


async def advance(purchase_id: uuid.UUID, outcome: Outcome) -> Purchase:
    """Applies `outcome` under the account lock; returns the purchase as it now is."""
    found = await Purchase.filter(id=purchase_id).values_list("team_id", flat=True)
    team_id = found[0] if found else None
    if not isinstance(team_id, uuid.UUID):
        raise NotFound()
    async with in_transaction() as conn:
        locked = await credits.lock_account(team_id, conn)
        purchase = await Purchase.select_for_update().using_db(conn).get(id=purchase_id)
        effects = await apply_outcome(conn, locked, purchase, outcome)
    await effects.run()
    return purchase


async def apply_outcome(
    conn: BaseDBAsyncClient,
    locked: credits.LockedAccount,
    purchase: Purchase,
    outcome: Outcome,
) -> Effects:
    """The one state transition of a purchase. Call with the team's account locked
    (first) and `purchase` read FOR UPDATE in the same transaction."""
    team_id = locked.team_id
    effects = Effects(team_id)
    known_intent = purchase.payment_intent_id
    if outcome.payment_intent_id and known_intent is None:
        purchase.payment_intent_id = outcome.payment_intent_id
    current = purchase.status
    if outcome.status not in _ALLOWED[current]:
        # A stale or repeated report: nothing moves (the PaymentIntent id may be new).
        if known_intent is None and purchase.payment_intent_id is not None:
            await purchase.save(using_db=conn, update_fields=["payment_intent_id"])
        return effects
    if outcome.status is PurchaseStatus.SUCCEEDED:
        await _settle_succeeded(conn, purchase, locked, effects)
        return effects
    purchase.status = outcome.status
    purchase.updated_at = locked.now
    if outcome.status is PurchaseStatus.REQUIRES_ACTION:
        purchase.client_secret = outcome.client_secret
    else:
        purchase.client_secret = None
    if outcome.status in (PurchaseStatus.FAILED, PurchaseStatus.CANCELED):
        purchase.failure_reason = (outcome.failure_reason or "The payment failed.")[:500]
    if (
        outcome.status is PurchaseStatus.PROCESSING
        and purchase.method is PurchaseMethod.BANK_TRANSFER
        and purchase.expected_settlement_at is None
    ):
        purchase.expected_settlement_at = clock.add_business_days(
            locked.now, BANK_SETTLEMENT_BUSINESS_DAYS
        )
    await purchase.save(using_db=conn)
    return effects


async def _settle_succeeded(
    conn: BaseDBAsyncClient,
    purchase: Purchase,
    locked: credits.LockedAccount,
    effects: Effects,
) -> None:
    """The purchase is paid: one PREPAID grant, in the caller's transaction, exactly once
    (the caller holds the account lock and checked that the purchase was not SUCCEEDED)."""
    grant = locked.add_grant(
        CreditKind.PREPAID,
        purchase.amount,
        description=_grant_description(purchase),
    )
    # A refund or dispute reported before the success takes its credits back at once.
    _claw_back(locked, purchase, grant.id)
    await locked.flush()
    purchase.status = PurchaseStatus.SUCCEEDED
    purchase.grant_id = grant.id
    purchase.settled_at = locked.now
    purchase.updated_at = locked.now
    purchase.client_secret = None
    purchase.failure_reason = None
    if purchase.pending_payment_method:
        info = PaymentMethodInfo(**purchase.pending_payment_method)
        method, became_default = await save_method_locked(conn, locked.team_id, info, None)
        purchase.payment_method_id = method.id
        purchase.pending_payment_method = None
        if became_default:
            effects.new_default = method.stripe_id
    await purchase.save(using_db=conn)
    effects.credits_changed = True
    # Every succeeded purchase gets its PAID CREDIT_PURCHASE invoice, in this transaction.
    await invoices.issue_purchase_invoice(conn, purchase)


def _grant_description(purchase: Purchase) -> str:
    if purchase.reason == "auto_top_up":
        return "Auto top-up"
    if purchase.method is PurchaseMethod.BANK_TRANSFER:
        return "Bank transfer purchase"
    return "Card purchase"


def _claw_back(locked: credits.LockedAccount, purchase: Purchase, grant_id: uuid.UUID) -> int:
    """Withdraws unspent credits for what was refunded or disputed (never below zero)."""
    target = min(purchase.amount, purchase.refunded_amount + purchase.disputed_amount)
    due = target - purchase.withdrawn_amount
    if due <= 0:
        return 0
    taken = locked.withdraw(grant_id, due)
    purchase.withdrawn_amount += taken
    return taken


async def record_reversal(
    conn: BaseDBAsyncClient,
    locked: credits.LockedAccount,
    purchase: Purchase,
    *,
    refunded: int | None = None,
    disputed: int | None = None,
) -> Effects:
    """A refund (cumulative amount) or a dispute reported by Stripe, in units.

    Amounts only grow, so repeated or reordered reports change nothing twice.
    The purchase's unspent credits are withdrawn now, or at settlement if it
    has not succeeded yet.
    """
    effects = Effects(locked.team_id)
    now = locked.now
    if refunded is not None and refunded > purchase.refunded_amount:
        purchase.refunded_amount = min(refunded, purchase.amount)
        purchase.refunded_at = purchase.refunded_at or now
    if disputed is not None and disputed > purchase.disputed_amount:
        purchase.disputed_amount = min(disputed, purchase.amount)
        purchase.disputed_at = purchase.disputed_at or now
    grant_id = purchase.grant_id
    if (
        purchase.status is PurchaseStatus.SUCCEEDED
        and isinstance(grant_id, uuid.UUID)
        and _claw_back(locked, purchase, grant_id)
    ):
        await locked.flush()
        effects.credits_changed = True
    purchase.updated_at = now
    await purchase.save(using_db=conn)
    return effects


# --- charging the default method (monthly invoices) ----------------------------------------------


@dataclass(frozen=True)
class Charge:
    """The outcome of an off-session charge. `processing`: a bank debit under way (neither
    paid nor failed yet)."""

    succeeded: bool
    payment_intent_id: str | None
    failure_message: str | None
    processing: bool = False


async def charge_default_method_off_session(
    team_id: uuid.UUID,
    amount_cents: int,
    *,
    idempotency_key: str,
    description: str,
    metadata: dict[str, str],
) -> Charge:
    """Charges the team's default method without the customer present (monthly close).

    Raises DomainError(PAYMENT_METHOD_REQUIRED) without a default method; a decline,
    an authentication request or an unreachable Stripe come back as a failed Charge.
    """
    method = await default_payment_method(team_id)
    if method is None:
        raise DomainError(
            ErrorCode.PAYMENT_METHOD_REQUIRED, "No default payment method on file.", None
        )
    customer = await ensure_customer(team_id)
    try:
        intent = await gateway().create_payment_intent(
            amount_cents,
            customer,
            method.stripe_id,
            off_session=True,
            payment_method_types=(
                ["card"] if method.type is PaymentMethodType.CARD else ["us_bank_account"]
            ),
            metadata={**metadata, "team_id": str(team_id), "description": description[:500]},
            idempotency_key=idempotency_key,
        )
    except PaymentDeclined as error:
        return Charge(False, error.payment_intent_id, error.message)
    except StripeUnavailable:
        return Charge(False, None, UNAVAILABLE_MESSAGE)
    except PaymentGatewayError as error:
        return Charge(False, None, f"Stripe refused the payment: {error}")
    if intent.status == "succeeded":
        return Charge(True, intent.id, None)
    if intent.status == "processing":
        return Charge(False, intent.id, None, processing=True)
    if intent.status in ("requires_action", "requires_confirmation"):
        return Charge(False, intent.id, "The bank asks the cardholder to authenticate.")
    return Charge(False, intent.id, intent.last_payment_error_message or "The payment failed.")


# --- history ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurchasePage:
    purchases: list[Purchase]
    has_next_page: bool
    cursors: list[str] = field(default_factory=list)


def purchase_cursor(purchase: Purchase) -> str:
    raw = f"{purchase.created_at.isoformat()}|{purchase.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, raw_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(raw_id)
    except (ValueError, UnicodeError) as error:
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a cursor of this list.", "after") from error


async def purchase_page(team_id: uuid.UUID, first: int, after: str | None) -> PurchasePage:
    """Newest first; `after` is the cursor of the last purchase already seen."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError(ErrorCode.INVALID_INPUT, f"first takes 0 to {MAX_PAGE}.", "first")
    query = Purchase.filter(team_id=team_id)
    if after:
        created_at, last_id = _parse_cursor(after)
        query = query.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=last_id)
        )
    rows = await query.order_by("-created_at", "-id").limit(first + 1)
    page = rows[:first]
    return PurchasePage(page, len(rows) > first, [purchase_cursor(p) for p in page])


async def purchase_of(team_id: uuid.UUID, purchase_id: object) -> Purchase | None:
    parsed = parse_uuid(purchase_id)
    return await Purchase.get_or_none(id=parsed, team_id=team_id) if parsed else None


async def methods_by_id(ids: Sequence[object]) -> dict[object, PaymentMethod]:
    """Payment methods (removed ones too) by id, for showing what paid for purchases."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {m.id: m for m in await PaymentMethod.filter(id__in=wanted)}
