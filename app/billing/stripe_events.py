"""Stripe's events, handled once: the inbox is unique on the event id.

An event is recorded in the inbox in the same transaction as its effects, after the
team's account row is locked: concurrent deliveries of one event queue on that lock,
and every one after the first finds the event recorded and changes nothing. Handlers
read what they need from Stripe before that transaction, never inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from tortoise.exceptions import IntegrityError

from app.billing import purchases
from app.credits.service import LockedAccount, lock_account
from app.events.commit import Transaction, atomic
from app.invoices.collection import resume_if_settled
from app.kit import clock
from app.kit.ids import parse_uuid
from app.kit.money import cents_to_units, units_to_cents_exact
from app.payments import stripe_objects
from app.payments.events import Event
from app.payments.gateway import gateway
from app.payments.methods import detached_at_stripe, save_method_locked
from app.payments.models import (
    PaymentMethod,
    Purchase,
    PurchaseStatus,
    StripeCustomer,
    StripeEvent,
    StripeObjectKind,
)
from app.payments.settlement import Outcome, record_dispute_won, record_reversal
from app.payments.stripe import (
    InvalidPaymentMethod,
    PaymentGatewayError,
    PaymentMethodInfo,
    StripeUnavailable,
)

log = structlog.get_logger(__name__)


# --- the inbox ------------------------------------------------------------------------------

Apply = Callable[[Transaction, LockedAccount | None], Awaitable[str]]


def _ignored(outcome: str) -> Apply:
    async def apply(_tx: Transaction, _locked: LockedAccount | None) -> str:
        return outcome

    return apply


async def _once(event: Event, team_id: uuid.UUID | None, apply: Apply) -> str:
    """Runs `apply` and records the event, in one transaction, unless already recorded."""
    inserting = False
    try:
        async with atomic() as tx:
            conn = tx.conn
            locked = await lock_account(team_id, conn) if team_id else None
            if await StripeEvent.filter(id=event.id).using_db(conn).exists():
                return "duplicate"
            outcome = await apply(tx, locked)
            inserting = True
            await StripeEvent.create(
                id=event.id,
                type=event.type,
                payload=event.payload,
                outcome=outcome[:100],
                received_at=clock.now(),
                using_db=conn,
            )
    except IntegrityError:
        if not inserting:
            raise
        # A concurrent delivery without a team lock to queue on recorded it first.
        return "duplicate"
    return outcome


# --- handlers -------------------------------------------------------------------------------


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def _purchase_for(obj: dict[str, Any], payment_intent_id: str | None) -> Purchase | None:
    """The purchase a PaymentIntent (or its charge) belongs to: our metadata first, since
    a webhook can arrive before the synchronous confirm has stored the intent's id."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        # Every purchase's intent carries both (app.payments.purchases): one team's row.
        purchase_id = parse_uuid(metadata.get("purchase_id"))
        team_id = parse_uuid(metadata.get("team_id"))
        if purchase_id is not None and team_id is not None:
            purchase = await Purchase.get_or_none(team_id=team_id, id=purchase_id)
            if purchase is not None:
                return purchase
    # Else the intent's team from the lookup, then the purchase by (team, intent).
    team_id = await stripe_objects.team_of(payment_intent_id, StripeObjectKind.PAYMENT_INTENT)
    if team_id is None:
        return None
    return await Purchase.get_or_none(team_id=team_id, payment_intent_id=payment_intent_id)


def _intent_outcome(event: Event, intent_id: str) -> Outcome | None:
    obj = event.object
    if event.type == "payment_intent.succeeded":
        return Outcome(PurchaseStatus.SUCCEEDED, intent_id)
    if event.type == "payment_intent.processing":
        return Outcome(PurchaseStatus.PROCESSING, intent_id)
    if event.type == "payment_intent.payment_failed":
        error = obj.get("last_payment_error")
        message = error.get("message") if isinstance(error, dict) else None
        return Outcome(
            PurchaseStatus.FAILED,
            intent_id,
            message if isinstance(message, str) and message else "The payment failed.",
        )
    if event.type == "payment_intent.canceled":
        return Outcome(PurchaseStatus.CANCELED, intent_id, "The payment was canceled.")
    return None


async def _on_payment_intent(event: Event) -> str:
    intent_id = _str(event.object, "id")
    outcome = _intent_outcome(event, intent_id) if intent_id else None
    purchase = await _purchase_for(event.object, intent_id) if intent_id else None
    if purchase is None or outcome is None:
        return await _once(event, None, _ignored("not a purchase"))
    if outcome.status is PurchaseStatus.SUCCEEDED:
        received = _int(event.object, "amount_received") or _int(event.object, "amount")
        if received != units_to_cents_exact(purchase.amount):
            log.error(
                "payments.amount_mismatch",
                purchase_id=str(purchase.id),
                payment_intent=intent_id,
                received=received,
            )
            return await _once(event, None, _ignored("amount mismatch"))
    team_id = purchase.team_id
    purchase_id = purchase.id

    async def apply(tx: Transaction, locked: LockedAccount | None) -> str:
        assert locked is not None
        assert outcome is not None
        current = (
            await Purchase.select_for_update()
            .using_db(tx.conn)
            .get(team_id=team_id, id=purchase_id)
        )
        if current.payment_intent_id not in (None, intent_id):
            return "another payment intent"
        before = current.status
        await purchases.apply(tx, locked, current, outcome)
        return f"purchase {before} -> {current.status}"

    return await _once(event, team_id, apply)


async def _team_of_customer(customer: str | None) -> uuid.UUID | None:
    if customer is None:
        return None
    team_id = await stripe_objects.team_of(customer, StripeObjectKind.CUSTOMER)
    if team_id is None or not await StripeCustomer.exists(team_id=team_id, stripe_id=customer):
        return None
    return team_id


async def _on_setup_intent_succeeded(event: Event) -> str:
    customer = _str(event.object, "customer")
    pm_id = _str(event.object, "payment_method")
    team_id = await _team_of_customer(customer)
    if team_id is None or pm_id is None or customer is None:
        return await _once(event, None, _ignored("not our customer"))
    if await PaymentMethod.exists(stripe_id=pm_id, team_id=team_id, removed_at=None):
        return await _once(event, None, _ignored("already on file"))
    try:
        info: PaymentMethodInfo = await gateway().retrieve_payment_method(pm_id)
        if info.customer is None:  # Stripe attaches on confirm; the emulator does not
            info = await gateway().attach_payment_method(pm_id, customer)
    except StripeUnavailable:
        raise
    except (InvalidPaymentMethod, PaymentGatewayError) as error:
        log.warning("payments.setup_intent_method_unusable", payment_method=pm_id, error=str(error))
        return await _once(event, None, _ignored("unusable payment method"))
    if info.customer != customer:
        return await _once(event, None, _ignored("method of another customer"))

    async def apply(tx: Transaction, _locked: LockedAccount | None) -> str:
        await save_method_locked(tx, team_id, info, None)
        return "payment method saved"

    return await _once(event, team_id, apply)


async def _on_payment_method_detached(event: Event) -> str:
    pm_id = _str(event.object, "id")
    owner = await stripe_objects.team_of(pm_id, StripeObjectKind.PAYMENT_METHOD)
    method = (
        await PaymentMethod.get_or_none(team_id=owner, stripe_id=pm_id)
        if owner is not None and pm_id is not None
        else None
    )
    if method is None or pm_id is None:
        return await _once(event, None, _ignored("not on file"))
    team_id = method.team_id

    async def apply(tx: Transaction, _locked: LockedAccount | None) -> str:
        removed = await detached_at_stripe(tx, team_id, pm_id)
        return "payment method removed" if removed else "already removed"

    return await _once(event, team_id, apply)


async def _on_charge_reversal(event: Event) -> str:
    """charge.refunded (a Charge) and charge.dispute.created (a Dispute). A dispute of
    credits already spent leaves a shortfall: invoiced billing is suspended until paid."""
    obj = event.object
    intent_id = _str(obj, "payment_intent")
    purchase = await _purchase_for(obj, intent_id)
    if purchase is None:
        return await _once(event, None, _ignored("not a purchase"))
    team_id = purchase.team_id
    purchase_id = purchase.id
    refunded = disputed = None
    if event.type == "charge.refunded":
        cents = _int(obj, "amount_refunded")
        refunded = cents_to_units(cents) if cents is not None else None
    else:
        cents = _int(obj, "amount")
        disputed = cents_to_units(cents) if cents is not None else None

    async def apply(tx: Transaction, locked: LockedAccount | None) -> str:
        assert locked is not None
        current = (
            await Purchase.select_for_update()
            .using_db(tx.conn)
            .get(team_id=team_id, id=purchase_id)
        )
        before = current.withdrawn_amount
        short_before = current.shortfall_amount
        await record_reversal(tx, locked, current, refunded=refunded, disputed=disputed)
        outcome = f"withdrew {current.withdrawn_amount - before} units"
        if current.shortfall_amount > short_before:
            outcome += f", shortfall {current.shortfall_amount} units"
        return outcome

    return await _once(event, team_id, apply)


async def _on_dispute_closed(event: Event) -> str:
    """charge.dispute.closed (a Dispute): won gives back what the dispute took; lost
    leaves its shortfall owed."""
    obj = event.object
    intent_id = _str(obj, "payment_intent")
    purchase = await _purchase_for(obj, intent_id)
    if purchase is None:
        return await _once(event, None, _ignored("not a purchase"))
    status = _str(obj, "status")
    if status != "won":
        return await _once(event, None, _ignored(f"dispute {status or 'closed'}"))
    team_id = purchase.team_id
    purchase_id = purchase.id
    cents = _int(obj, "amount")
    disputed = cents_to_units(cents) if cents is not None else None

    async def apply(tx: Transaction, locked: LockedAccount | None) -> str:
        assert locked is not None
        current = (
            await Purchase.select_for_update()
            .using_db(tx.conn)
            .get(team_id=team_id, id=purchase_id)
        )
        if current.dispute_won_at is not None:
            return "dispute already won"
        restored = await record_dispute_won(tx, locked, current, disputed=disputed)
        resumed = await resume_if_settled(tx, locked)
        return f"dispute won: restored {restored} units" + (", resumed" if resumed else "")

    return await _once(event, team_id, apply)


_HANDLERS: dict[str, Callable[[Event], Awaitable[str]]] = {
    "payment_intent.succeeded": _on_payment_intent,
    "payment_intent.processing": _on_payment_intent,
    "payment_intent.payment_failed": _on_payment_intent,
    "payment_intent.canceled": _on_payment_intent,
    "setup_intent.succeeded": _on_setup_intent_succeeded,
    "payment_method.detached": _on_payment_method_detached,
    "charge.refunded": _on_charge_reversal,
    "charge.dispute.created": _on_charge_reversal,
    "charge.dispute.closed": _on_dispute_closed,
}


async def handle_event(event: Event) -> str:
    """Handles one verified event; returns what it did. Unknown types are recorded and ignored."""
    handler = _HANDLERS.get(event.type)
    if handler is None:
        return await _once(event, None, _ignored("ignored"))
    return await handler(event)
