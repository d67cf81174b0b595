"""Recording how an invoice's charge went: paid, failed (invoiced billing suspended),
under way, or not reached. The charge itself is `app.billing.collection`'s part.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import StrEnum

import structlog
from tortoise.expressions import Q

from app.credits import alerts
from app.credits.models import AlertKind
from app.credits.service import LockedAccount, lock_account
from app.events import outbox
from app.events.commit import Transaction, atomic
from app.invoices.documents import money_text
from app.invoices.issuing import invoice_data
from app.invoices.models import Invoice, InvoiceKind, InvoiceStatus
from app.kit import clock
from app.payments.settlement import outstanding_shortfall

log = structlog.get_logger(__name__)

# Stripe's smallest USD charge. Invoices under it stay OPEN and are never charged.
MIN_CHARGE_CENTS = 50
# How long one worker owns an invoice's charge before another may try.
CHARGE_LEASE = timedelta(minutes=10)
# After Stripe could not be reached: try again this much later (same idempotency key).
UNAVAILABLE_RETRY = timedelta(minutes=15)
# A bank debit under way is looked at again this much later.
PROCESSING_RECHECK = timedelta(days=1)
# After the n-th decline, wait RETRY_DELAYS[n-1] (the last one repeats).
RETRY_DELAYS = (timedelta(days=1), timedelta(days=3), timedelta(days=5), timedelta(days=7))


class ChargeOutcome(StrEnum):
    PAID = "PAID"
    FAILED = "FAILED"
    UNAVAILABLE = "UNAVAILABLE"  # Stripe not reached; nothing recorded, retried later
    PROCESSING = "PROCESSING"  # a bank debit under way; stays OPEN until it settles
    SKIPPED = "SKIPPED"  # not chargeable now (paid, below the minimum, or being charged)


def retry_delay(attempts: int) -> timedelta:
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


async def claim(team_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice | None:
    """The team's invoice, leased to this worker for its charge; None when it is not
    chargeable now (paid, below the minimum, or another worker holds the lease)."""
    now = clock.now()
    claimed = (
        await Invoice.filter(
            team_id=team_id,
            id=invoice_id,
            status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED],
            total_cents__gte=MIN_CHARGE_CENTS,
        )
        .filter(Q(charging_until__isnull=True) | Q(charging_until__lte=now))
        .update(charging_until=now + CHARGE_LEASE)
    )
    if not claimed:
        return None
    return await Invoice.get(team_id=team_id, id=invoice_id)


async def due_invoices(*, due_only: bool, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Unpaid usage invoices to charge again (`due_only`: those whose retry time has come),
    as (team_id, invoice id): every later read and write of one goes by its whole key."""
    query = Invoice.filter(
        kind=InvoiceKind.MONTHLY_USAGE,
        status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED],
        total_cents__gte=MIN_CHARGE_CENTS,
    )
    if due_only:
        query = query.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=clock.now()))
    rows = await query.order_by("issued_at").limit(limit).values_list("team_id", "id")
    return [(uuid.UUID(str(team)), uuid.UUID(str(ident))) for team, ident in rows]


async def record_unavailable(invoice: Invoice, message: str) -> ChargeOutcome:
    """Stripe was not reached: nothing recorded but a later retry (with the same key)."""
    log.warning("invoice.charge_unavailable", number=invoice.number, error=message)
    await Invoice.filter(team_id=invoice.team_id, id=invoice.id).update(
        charging_until=None, next_attempt_at=clock.now() + UNAVAILABLE_RETRY
    )
    return ChargeOutcome.UNAVAILABLE


def _charged(payment_method_id: uuid.UUID | None) -> dict[str, uuid.UUID]:
    """The method a new charge used, kept for the PDF; a follow-up (None) keeps the last."""
    return {} if payment_method_id is None else {"payment_method_id": payment_method_id}


async def record_processing(
    invoice: Invoice, payment_intent_id: str | None, *, payment_method_id: uuid.UUID | None = None
) -> ChargeOutcome:
    """A bank debit under way: stays OPEN; later passes ask Stripe how it ended."""
    await Invoice.filter(team_id=invoice.team_id, id=invoice.id).update(
        **_charged(payment_method_id),
        payment_intent_id=payment_intent_id,
        charging_until=None,
        next_attempt_at=clock.now() + PROCESSING_RECHECK,
    )
    return ChargeOutcome.PROCESSING


async def resume_if_settled(tx: Transaction, locked: LockedAccount) -> bool:
    """Lifts the team's suspension of invoiced billing once nothing is owed: no invoice
    has failed and no dispute's shortfall is outstanding. True when lifted just now."""
    if not locked.account.invoicing_suspended:
        return False
    conn = tx.conn
    team_id = locked.team_id
    failed = (
        await Invoice.filter(team_id=team_id, status=InvoiceStatus.PAYMENT_FAILED)
        .using_db(conn)
        .exists()
    )
    if failed or await outstanding_shortfall(conn, team_id) > 0:
        return False
    locked.account.invoicing_suspended = False
    await locked.flush()
    tx.credits_changed(team_id)
    return True


async def record_paid(
    invoice: Invoice, payment_intent_id: str | None, *, payment_method_id: uuid.UUID | None = None
) -> None:
    """PAID; lifts the team's suspension once nothing is owed (`resume_if_settled`)."""
    team_id = invoice.team_id
    async with atomic() as tx:
        conn = tx.conn
        locked = await lock_account(team_id, conn)
        paid = await (
            Invoice.filter(team_id=team_id, id=invoice.id)
            .exclude(status=InvoiceStatus.PAID)
            .using_db(conn)
            .update(
                **_charged(payment_method_id),
                status=InvoiceStatus.PAID,
                paid_at=clock.now(),
                payment_intent_id=payment_intent_id,
                failure_message=None,
                next_attempt_at=None,
                charging_until=None,
            )
        )
        if paid:
            data = {**invoice_data(invoice), "status": InvoiceStatus.PAID.value}
            await outbox.emit(tx, "invoice.paid", data, team_id=team_id)
        await resume_if_settled(tx, locked)
    log.info("invoice.paid", number=invoice.number, team_id=str(team_id))


async def record_failure(
    invoice: Invoice,
    message: str,
    payment_intent_id: str | None,
    *,
    payment_method_id: uuid.UUID | None = None,
) -> None:
    """PAYMENT_FAILED, the team's invoiced billing suspended, and a PAYMENT_FAILED alert."""
    team_id = invoice.team_id
    attempts = invoice.charge_attempts + 1
    now = clock.now()
    async with atomic() as tx:
        conn = tx.conn
        locked = await lock_account(team_id, conn)
        updated = await (
            Invoice.filter(
                team_id=team_id,
                id=invoice.id,
                status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED],
            )
            .using_db(conn)
            .update(
                **_charged(payment_method_id),
                status=InvoiceStatus.PAYMENT_FAILED,
                failure_message=message[:500],
                payment_intent_id=payment_intent_id,
                charge_attempts=attempts,
                next_attempt_at=now + retry_delay(attempts),
                charging_until=None,
            )
        )
        if not updated:  # paid meanwhile (e.g. a late success report): nothing failed
            return
        locked.account.invoicing_suspended = True
        await locked.flush()
        tx.credits_changed(team_id)
        await alerts.raise_alert(
            conn,
            team_id,
            AlertKind.PAYMENT_FAILED,
            f"The payment of invoice {invoice.number} ({money_text(invoice.total_cents)}) "
            f"failed: {message} Invoiced billing is suspended until it is paid.",
            period=invoice.period or clock.period_of(now),
            key=f"invoice:{invoice.number}",
        )
        # The alert above is the failed charge's email; this is the platform's event.
        data = {
            **invoice_data(invoice),
            "status": InvoiceStatus.PAYMENT_FAILED.value,
            "failureMessage": message[:500],
            "attempts": attempts,
        }
        await outbox.emit(tx, "invoice.payment_failed", data, team_id=team_id)
    log.warning("invoice.payment_failed", number=invoice.number, attempts=attempts, error=message)
