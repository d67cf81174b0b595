"""Payment methods on file: adding, the default, removing (never the last one).

Every change locks the team's account row first, the one lock all of a team's
billing changes take, so two admins editing at once apply one after the other.
Stripe is called before or after the transaction, never inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits.models import CreditAccount
from app.events.commit import Transaction, atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.ids import parse_uuid
from app.payments import stripe_objects
from app.payments.customers import customer_of, ensure_customer
from app.payments.gateway import domain_error, gateway
from app.payments.models import PaymentMethod, PaymentMethodType, StripeObjectKind
from app.payments.stripe import (
    InvalidPaymentMethod,
    PaymentGatewayError,
    PaymentMethodInfo,
    SetupIntentResult,
    StripeUnavailable,
)
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction

log = structlog.get_logger(__name__)


async def lock_team(team_id: uuid.UUID, conn: BaseDBAsyncClient) -> None:
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


async def live_method(team_id: uuid.UUID, payment_method_id: object) -> PaymentMethod:
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
            raise domain_error(error) from error
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"Stripe refused the setup: {error}", "type"
        ) from error


def _check_stripe_id(value: str, field: str) -> str:
    value = value.strip()
    if not value.startswith("pm_") or len(value) > 255 or not value.isascii():
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a Stripe payment method id.", field)
    return value


async def attach(customer: str, stripe_payment_method_id: str, field: str) -> PaymentMethodInfo:
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
        raise domain_error(error, field) from error
    if info.customer != customer:
        # Someone else's method answers like an unknown one.
        raise DomainError(ErrorCode.INVALID_INPUT, "No such payment method.", field)
    return info


def _method_type(info: PaymentMethodInfo) -> PaymentMethodType:
    return PaymentMethodType.CARD if info.type == "card" else PaymentMethodType.BANK_ACCOUNT


async def save_method_locked(
    tx: Transaction,
    team_id: uuid.UUID,
    info: PaymentMethodInfo,
    make_default: bool | None,
    *,
    actor: str = audit.SYSTEM,
) -> tuple[PaymentMethod, bool]:
    """Puts a method on file (the team's account row is locked by the caller).

    The first live method becomes the default, mirrored at Stripe after the commit.
    Returns the row and whether it became the default just now. Saving a method already
    on file changes nothing else.
    """
    conn = tx.conn
    now = clock.now()
    # The lookup says whose the Stripe id is; the row is then read by (team_id, stripe_id).
    owner = await stripe_objects.team_of(info.id, StripeObjectKind.PAYMENT_METHOD, conn)
    if owner is not None and owner != team_id:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "No such payment method.", "stripePaymentMethodId"
        )
    existing = (
        await PaymentMethod.filter(team_id=team_id, stripe_id=info.id).using_db(conn).first()
        if owner is not None
        else None
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
    if owner is None:
        await stripe_objects.remember(conn, info.id, StripeObjectKind.PAYMENT_METHOD, team_id)
    if not was_on_file:
        new = _audited_method(row)
        await audit.record(conn, team_id, actor, AuditAction.PAYMENT_METHOD_ADDED, None, new)
    elif become_default:
        old = _audited_method(previous_default) if previous_default else None
        action = AuditAction.DEFAULT_PAYMENT_METHOD_CHANGED
        await audit.record(conn, team_id, actor, action, old, _audited_method(row))
    if become_default:
        _sync_default_after(tx, team_id, row.stripe_id)
    return row, become_default


def _audited_method(method: PaymentMethod) -> dict[str, object]:
    return {
        "id": str(method.id),
        "type": method.type.value,
        "brand": method.brand,
        "last4": method.last4,
        "isDefault": method.is_default,
    }


def _sync_default_after(tx: Transaction, team_id: uuid.UUID, stripe_id: str) -> None:
    async def sync() -> None:
        await sync_default(team_id, stripe_id)

    tx.after(sync)


async def sync_default(team_id: uuid.UUID, stripe_id: str | None) -> None:
    """Mirrors our default at Stripe (invoice_settings); best effort: ours is what we charge."""
    customer = await customer_of(team_id)
    if customer is None or stripe_id is None:
        return
    try:
        await gateway().set_default_payment_method(customer, stripe_id)
    except PaymentGatewayError as error:
        log.warning("payments.sync_default_failed", team_id=str(team_id), error=str(error))


async def detach(stripe_id: str) -> None:
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
    info = await attach(customer, stripe_payment_method_id, "stripePaymentMethodId")
    async with atomic() as tx:
        await lock_team(team_id, tx.conn)
        method, _ = await save_method_locked(tx, team_id, info, make_default, actor=actor)
    return method


async def set_default_payment_method(
    team_id: uuid.UUID, payment_method_id: object, *, actor: str = audit.SYSTEM
) -> PaymentMethod:
    async with atomic() as tx:
        conn = tx.conn
        await lock_team(team_id, conn)
        method = await live_method(team_id, payment_method_id)
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
        _sync_default_after(tx, team_id, method.stripe_id)
    return method


async def remove_payment_method(
    team_id: uuid.UUID, payment_method_id: object, *, actor: str = audit.SYSTEM
) -> uuid.UUID:
    """Takes a method off file (never the last one); removing the default promotes the newest."""
    async with atomic() as tx:
        conn = tx.conn
        await lock_team(team_id, conn)
        method = await live_method(team_id, payment_method_id)
        old = _audited_method(method)
        promoted = await _remove_locked(conn, team_id, method, allow_last=False)
        await audit.record(conn, team_id, actor, AuditAction.PAYMENT_METHOD_REMOVED, old, None)
    await detach(method.stripe_id)
    if promoted is not None:
        await sync_default(team_id, promoted.stripe_id)
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


async def detached_at_stripe(tx: Transaction, team_id: uuid.UUID, stripe_id: str) -> bool:
    """A method detached at Stripe (dashboard, API) leaves the file, even the last one.
    Returns whether it was on file."""
    conn = tx.conn
    method = (
        await PaymentMethod.filter(team_id=team_id, stripe_id=stripe_id, removed_at=None)
        .using_db(conn)
        .first()
    )
    if method is None:
        return False
    old = _audited_method(method)
    promoted = await _remove_locked(conn, team_id, method, allow_last=True)
    actor = f"{audit.SYSTEM}: detached at Stripe"
    await audit.record(conn, team_id, actor, AuditAction.PAYMENT_METHOD_REMOVED, old, None)
    if promoted is not None:
        _sync_default_after(tx, team_id, promoted.stripe_id)
    return True


async def methods_by_id(team_id: uuid.UUID, ids: Sequence[object]) -> dict[object, PaymentMethod]:
    """The team's payment methods (removed ones too) by id, for showing what paid for
    purchases."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {m.id: m for m in await PaymentMethod.filter(team_id=team_id, id__in=wanted)}
