"""Buying credits end to end: charge, credit the team, issue the purchase invoice.

payments stores and charges a purchase and moves its state; a purchase that settles
is credited and gets its PAID CREDIT_PURCHASE invoice in the same transaction, here,
whether the success came from the synchronous confirm or from a webhook.
"""

from __future__ import annotations

import uuid

from app.credits.service import LockedAccount, lock_account
from app.events import outbox
from app.events.commit import Transaction, atomic
from app.invoices.collection import resume_if_settled
from app.invoices.issuing import issue_purchase_invoice
from app.kit.errors import NotFound
from app.kit.money import format_units
from app.payments.methods import detach
from app.payments.models import Purchase, PurchaseMethod, PurchaseStatus
from app.payments.purchases import Started, start_off_session, start_purchase
from app.payments.settlement import Outcome, apply_outcome


async def apply(
    tx: Transaction, locked: LockedAccount, purchase: Purchase, outcome: Outcome
) -> None:
    """Moves `purchase` by `outcome` under the account lock; a settlement is invoiced, and
    one that paid disputes' shortfalls may lift the team's suspension. Both ends are told
    through the outbox: `purchase.succeeded` (the receipt email) and `purchase.failed`."""
    before = purchase.status
    if await apply_outcome(tx, locked, purchase, outcome):
        invoice = await issue_purchase_invoice(tx.conn, purchase)
        if purchase.covered_shortfall > 0:
            await resume_if_settled(tx, locked)
        data = {**_purchase_data(purchase), "invoiceId": str(invoice.id)}
        await outbox.emit(tx, "purchase.succeeded", data, team_id=purchase.team_id)
    elif purchase.status is not before and purchase.status in _FAILED:
        data = {**_purchase_data(purchase), "failureReason": purchase.failure_reason}
        await outbox.emit(tx, "purchase.failed", data, team_id=purchase.team_id)


_FAILED = (PurchaseStatus.FAILED, PurchaseStatus.CANCELED)


def _purchase_data(purchase: Purchase) -> dict[str, object]:
    return {
        "teamId": str(purchase.team_id),
        "purchaseId": str(purchase.id),
        "amount": format_units(purchase.amount),
        "status": purchase.status.value,
        "method": purchase.method.value,
    }


async def advance(team_id: uuid.UUID, purchase_id: uuid.UUID, outcome: Outcome) -> Purchase:
    """Applies `outcome` in its own transaction; returns the purchase as it now is."""
    async with atomic() as tx:
        locked = await lock_account(team_id, tx.conn)
        purchase = (
            await Purchase.select_for_update()
            .using_db(tx.conn)
            .get_or_none(team_id=team_id, id=purchase_id)
        )
        if purchase is None:
            raise NotFound()
        await apply(tx, locked, purchase, outcome)
    return purchase


async def _finish(started: Started) -> Purchase:
    if started.outcome is None:
        return started.purchase  # a replay: the first request's purchase as it stands
    purchase = await advance(started.purchase.team_id, started.purchase.id, started.outcome)
    if purchase.status is PurchaseStatus.FAILED and started.new_card is not None:
        # A new card that did not pay is not kept on file.
        await detach(started.new_card)
    return purchase


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
    started = await start_purchase(
        team_id,
        amount,
        method=method,
        payment_method_id=payment_method_id,
        stripe_payment_method_id=stripe_payment_method_id,
        idempotency_key=idempotency_key,
    )
    return await _finish(started)


async def purchase_off_session(
    team_id: uuid.UUID, amount_units: int, *, idempotency_key: str, reason: str
) -> Purchase:
    """A merchant-initiated card purchase (auto top-up), settled like `purchase_credits`."""
    started = await start_off_session(
        team_id, amount_units, idempotency_key=idempotency_key, reason=reason
    )
    return await _finish(started)
