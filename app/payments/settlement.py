"""A purchase's state machine: what Stripe reported moves it, forward only.

Every change runs with the team's account row locked first and the purchase read
FOR UPDATE (the caller's transaction), and moves the status only as `_ALLOWED` says;
so the synchronous confirm and any number of webhook deliveries, in any order and at
once, credit a purchase exactly once. Issuing its invoice is the caller's part
(`app.billing.purchases`), in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits import alerts
from app.credits.models import AlertKind, CreditKind
from app.credits.service import LockedAccount
from app.events.commit import Transaction
from app.kit import clock
from app.kit.money import format_units
from app.payments import stripe_objects
from app.payments.charges import ChargeResult, ChargeStatus
from app.payments.methods import save_method_locked
from app.payments.models import Purchase, PurchaseMethod, PurchaseStatus, StripeObjectKind
from app.payments.stripe import PaymentMethodInfo

BANK_SETTLEMENT_BUSINESS_DAYS = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """What Stripe reported about a purchase's PaymentIntent."""

    status: PurchaseStatus
    payment_intent_id: str | None = None
    failure_reason: str | None = None
    client_secret: str | None = None


_STATUS_OF_CHARGE = {
    ChargeStatus.SUCCEEDED: PurchaseStatus.SUCCEEDED,
    ChargeStatus.PROCESSING: PurchaseStatus.PROCESSING,
    ChargeStatus.REQUIRES_ACTION: PurchaseStatus.REQUIRES_ACTION,
    ChargeStatus.FAILED: PurchaseStatus.FAILED,
    ChargeStatus.CANCELED: PurchaseStatus.CANCELED,
    # Whether Stripe took it is unknown; if it did, its webhook still settles the purchase.
    ChargeStatus.UNAVAILABLE: PurchaseStatus.FAILED,
}


def outcome_of_charge(charge: ChargeResult) -> Outcome:
    status = _STATUS_OF_CHARGE[charge.status]
    if status is PurchaseStatus.REQUIRES_ACTION:
        return Outcome(status, charge.payment_intent_id, client_secret=charge.client_secret)
    if status in (PurchaseStatus.FAILED, PurchaseStatus.CANCELED):
        return Outcome(status, charge.payment_intent_id, charge.failure_message)
    return Outcome(status, charge.payment_intent_id)


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


async def apply_outcome(
    tx: Transaction, locked: LockedAccount, purchase: Purchase, outcome: Outcome
) -> bool:
    """The one state transition of a purchase; True when it settled (credited) just now.

    Call with the team's account locked (first) and `purchase` read FOR UPDATE in `tx`.
    """
    conn = tx.conn
    known_intent = purchase.payment_intent_id
    if outcome.payment_intent_id and known_intent is None:
        purchase.payment_intent_id = outcome.payment_intent_id
        # Written with the purchase (every path below saves it): webhooks find the
        # purchase's team from the intent's id.
        await stripe_objects.remember(
            conn, outcome.payment_intent_id, StripeObjectKind.PAYMENT_INTENT, purchase.team_id
        )
    current = purchase.status
    if outcome.status not in _ALLOWED[current]:
        # A stale or repeated report: nothing moves (the PaymentIntent id may be new).
        if known_intent is None and purchase.payment_intent_id is not None:
            await purchase.save(using_db=conn, update_fields=["payment_intent_id"])
        return False
    if outcome.status is PurchaseStatus.SUCCEEDED:
        await _settle_succeeded(tx, purchase, locked)
        return True
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
    return False


async def _settle_succeeded(tx: Transaction, purchase: Purchase, locked: LockedAccount) -> None:
    """The purchase is paid: one PREPAID grant, in the caller's transaction, exactly once
    (the caller holds the account lock and checked that the purchase was not SUCCEEDED)."""
    grant = locked.add_grant(
        CreditKind.PREPAID,
        purchase.amount,
        description=_grant_description(purchase),
    )
    # A refund or dispute reported before the success takes its credits back at once.
    _claw_back(locked, purchase, grant.id)
    # What earlier disputes could not withdraw is owed: paid first from the new credits.
    await _pay_shortfalls(tx, locked, purchase, grant.id)
    await locked.flush()
    purchase.status = PurchaseStatus.SUCCEEDED
    purchase.grant_id = grant.id
    purchase.settled_at = locked.now
    purchase.updated_at = locked.now
    purchase.client_secret = None
    purchase.failure_reason = None
    if purchase.pending_payment_method:
        info = PaymentMethodInfo(**purchase.pending_payment_method)
        method, _ = await save_method_locked(tx, locked.team_id, info, None)
        purchase.payment_method_id = method.id
        purchase.pending_payment_method = None
    await purchase.save(using_db=tx.conn)
    tx.credits_changed(locked.team_id)


def _grant_description(purchase: Purchase) -> str:
    if purchase.reason == "auto_top_up":
        return "Auto top-up"
    if purchase.method is PurchaseMethod.BANK_TRANSFER:
        return "Bank transfer purchase"
    return "Card purchase"


def _dispute_part(purchase: Purchase) -> int:
    """What the dispute adds to the amount to withdraw, beyond what was refunded."""
    refunded = min(purchase.refunded_amount, purchase.amount)
    return int(min(purchase.amount, refunded + purchase.disputed_amount) - refunded)


def _claw_back(locked: LockedAccount, purchase: Purchase, grant_id: uuid.UUID) -> int:
    """Withdraws unspent credits for what was refunded or disputed (never below zero), and
    records what a dispute could not withdraw as the purchase's shortfall."""
    # A won dispute takes nothing (more) back: its money stayed with us, and what it had
    # withdrawn was given back (`restored_amount`, less the shortfall paid by others).
    won = purchase.dispute_won_at is not None
    disputed = 0 if won else purchase.disputed_amount
    given_back = purchase.restored_amount - purchase.shortfall_paid if won else 0
    target = min(purchase.amount, purchase.refunded_amount + disputed)
    due = target - (purchase.withdrawn_amount - given_back)
    taken = locked.withdraw(grant_id, due) if due > 0 else 0
    purchase.withdrawn_amount += taken
    if not won:
        # What is left unwithdrawn was spent; a refund's part is our own choice, so the
        # shortfall counts only the dispute's. It only grows (reports may repeat).
        unwithdrawn = target - purchase.withdrawn_amount
        short = min(_dispute_part(purchase), unwithdrawn)
        purchase.shortfall_amount = max(purchase.shortfall_amount, short)
    return taken


def outstanding(purchase: Purchase) -> int:
    """What the team still owes for this purchase's dispute (0 once won)."""
    if purchase.dispute_won_at is not None:
        return 0
    return max(0, int(purchase.shortfall_amount - purchase.shortfall_paid))


async def _owing(conn: BaseDBAsyncClient, team_id: uuid.UUID, lock: bool) -> list[Purchase]:
    query = Purchase.filter(team_id=team_id, shortfall_amount__gt=0, dispute_won_at=None)
    if lock:
        query = query.select_for_update()
    rows = await query.using_db(conn).order_by("disputed_at", "id")
    return [p for p in rows if outstanding(p) > 0]


async def outstanding_shortfall(conn: BaseDBAsyncClient, team_id: uuid.UUID) -> int:
    """What the team owes for disputes that could not be withdrawn (read under its lock)."""
    return sum(outstanding(p) for p in await _owing(conn, team_id, lock=False))


async def _pay_shortfalls(
    tx: Transaction, locked: LockedAccount, purchase: Purchase, grant_id: uuid.UUID
) -> None:
    """Pays the team's outstanding shortfalls, oldest dispute first, from `purchase`'s new
    grant; recorded on both purchases. Lifting the suspension is the caller's part (it
    also depends on invoices)."""
    for owing in await _owing(tx.conn, locked.team_id, lock=True):
        if owing.id == purchase.id:
            continue
        taken = locked.withdraw(grant_id, outstanding(owing))
        if taken <= 0:
            break
        owing.shortfall_paid += taken
        owing.updated_at = locked.now
        await owing.save(using_db=tx.conn, update_fields=["shortfall_paid", "updated_at"])
        purchase.covered_shortfall += taken


async def _suspend_for_shortfall(
    tx: Transaction, locked: LockedAccount, purchase: Purchase
) -> None:
    """Spent credits were disputed: no invoiced usage until they are paid, and one alert."""
    locked.account.invoicing_suspended = True
    await locked.flush()
    tx.credits_changed(locked.team_id)
    disputed_at = purchase.disputed_at or locked.now
    await alerts.raise_alert(
        tx.conn,
        locked.team_id,
        AlertKind.PAYMENT_FAILED,
        f"A purchase of ${format_units(purchase.amount)} was disputed after "
        f"${format_units(purchase.shortfall_amount)} of its credits were spent. Invoiced "
        "billing is suspended until that amount is paid; the next purchase pays it first.",
        # The dispute's own month: a repeated report in a later month is the same alert.
        period=clock.period_of(disputed_at),
        key=f"dispute:{purchase.id}",
    )


async def record_reversal(
    tx: Transaction,
    locked: LockedAccount,
    purchase: Purchase,
    *,
    refunded: int | None = None,
    disputed: int | None = None,
) -> None:
    """A refund (cumulative amount) or a dispute reported by Stripe, in units.

    Amounts only grow, so repeated or reordered reports change nothing twice.
    The purchase's unspent credits are withdrawn now, or at settlement if it
    has not succeeded yet.
    """
    now = locked.now
    if refunded is not None and refunded > purchase.refunded_amount:
        purchase.refunded_amount = min(refunded, purchase.amount)
        purchase.refunded_at = purchase.refunded_at or now
    if disputed is not None and disputed > purchase.disputed_amount:
        purchase.disputed_amount = min(disputed, purchase.amount)
        purchase.disputed_at = purchase.disputed_at or now
    grant_id = purchase.grant_id
    short_before = purchase.shortfall_amount
    if (
        purchase.status is PurchaseStatus.SUCCEEDED
        and grant_id is not None
        and _claw_back(locked, purchase, grant_id)
    ):
        await locked.flush()
        tx.credits_changed(locked.team_id)
    if purchase.shortfall_amount > short_before:
        await _suspend_for_shortfall(tx, locked, purchase)
    purchase.updated_at = now
    await purchase.save(using_db=tx.conn)


async def record_dispute_won(
    tx: Transaction, locked: LockedAccount, purchase: Purchase, *, disputed: int | None
) -> int:
    """The dispute was decided for us: gives back, as a new PREPAID grant, what was
    withdrawn for it and what later purchases paid of its shortfall; the rest of the
    shortfall is no longer owed. Returns the units given back.

    Once only (`dispute_won_at`); a dispute reported after it withdraws nothing. Lifting
    the suspension is the caller's part (it also depends on invoices).
    """
    if purchase.dispute_won_at is not None:
        return 0
    now = locked.now
    # What this purchase's own grant gave up for the dispute (refunds count first).
    refunded = min(purchase.refunded_amount, purchase.amount)
    own = min(
        max(0, _dispute_part(purchase) - purchase.shortfall_amount),
        max(0, purchase.withdrawn_amount - refunded),
    )
    restored = int(own + purchase.shortfall_paid)
    if disputed is not None and disputed > purchase.disputed_amount:
        purchase.disputed_amount = min(disputed, purchase.amount)
        purchase.disputed_at = purchase.disputed_at or now
    purchase.dispute_won_at = now
    purchase.restored_amount = restored
    if restored > 0:
        locked.add_grant(CreditKind.PREPAID, restored, description="Dispute won")
        await locked.flush()
        tx.credits_changed(locked.team_id)
    purchase.updated_at = now
    await purchase.save(using_db=tx.conn)
    return restored
