"""Issuing invoices: a purchase's (PAID at issue) and a closed month's usage invoice.

Each invoice has a unique `source_key` (the purchase, or the team and month), so
however many closers or settlements race, one invoice is issued per source.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from app.credits.models import InvoicedPeriod
from app.credits.service import lock_account
from app.events import outbox
from app.events.commit import atomic, current
from app.invoices import numbering, seller
from app.invoices.address import Address
from app.invoices.documents import LineView, usage_lines
from app.invoices.models import BillingAddress, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from app.kit import clock
from app.kit.money import units_to_cents_exact

log = structlog.get_logger(__name__)


class PurchaseLike(Protocol):
    """What a purchase invoice needs of `app.payments.models.Purchase`."""

    id: uuid.UUID
    team_id: uuid.UUID
    amount: int
    payment_intent_id: str | None
    payment_method_id: uuid.UUID | None
    settled_at: datetime | None


async def _snapshot(conn: BaseDBAsyncClient, team_id: uuid.UUID) -> dict[str, object] | None:
    row = await BillingAddress.filter(team_id=team_id).using_db(conn).first()
    return Address.of(row).to_json() if row else None


async def _issue(
    conn: BaseDBAsyncClient,
    *,
    team_id: uuid.UUID,
    kind: InvoiceKind,
    source_key: str,
    lines: list[LineView],
    status: InvoiceStatus,
    period: str | None = None,
    purchase_id: uuid.UUID | None = None,
    paid_at: datetime | None = None,
    payment_intent_id: str | None = None,
    payment_method_id: uuid.UUID | None = None,
) -> Invoice:
    """Inserts an invoice and its lines; the number is allocated last (see numbering)."""
    now = clock.now()
    start, end = clock.period_bounds(period) if period else (None, None)
    subtotal = sum(line.amount_cents for line in lines)
    tax = 0  # no tax is configured yet
    snapshot = await _snapshot(conn, team_id)
    number = await numbering.allocate(conn, now)
    invoice = await Invoice.create(
        using_db=conn,
        id=uuid.uuid4(),
        team_id=team_id,
        number=number,
        source_key=source_key,
        kind=kind,
        status=status,
        currency="usd",
        period=period,
        period_start=start,
        period_end=end,
        subtotal_cents=subtotal,
        tax_cents=tax,
        total_cents=subtotal + tax,
        billing_address=snapshot,
        seller=seller.current().to_json(),
        purchase_id=purchase_id,
        payment_method_id=payment_method_id,
        issued_at=now,
        paid_at=paid_at,
        payment_intent_id=payment_intent_id,
    )
    await InvoiceLine.bulk_create(
        [
            InvoiceLine(
                team_id=team_id,
                invoice_id=invoice.id,
                position=position,
                description=line.description,
                quantity=line.quantity,
                unit_amount_cents=line.unit_amount_cents,
                amount_cents=line.amount_cents,
                exact_units=line.exact_units,
            )
            for position, line in enumerate(lines)
        ],
        using_db=conn,
    )
    log.info("invoice.issued", number=number, kind=kind.value, team_id=str(team_id))
    await outbox.emit(current(), "invoice.issued", invoice_data(invoice), team_id=team_id)
    return invoice


def invoice_data(invoice: Invoice) -> dict[str, object]:
    """What an invoice's outbox events carry (webhook `data`, the email's facts)."""
    return {
        "teamId": str(invoice.team_id),
        "invoiceId": str(invoice.id),
        "number": invoice.number,
        "kind": invoice.kind.value,
        "status": invoice.status.value,
        "period": invoice.period,
        "totalCents": invoice.total_cents,
        "currency": invoice.currency,
        "purchaseId": str(invoice.purchase_id) if invoice.purchase_id else None,
    }


async def issue_purchase_invoice(conn: BaseDBAsyncClient, purchase: PurchaseLike) -> Invoice:
    """The PAID CREDIT_PURCHASE invoice of a succeeded purchase, issued once.

    Runs inside the transaction that credits the purchase (which holds the team's account
    lock), so the purchase and its invoice commit together.
    """
    key = f"purchase:{purchase.id}"
    existing = await Invoice.filter(team_id=purchase.team_id, source_key=key).using_db(conn).first()
    if existing is not None:
        return existing
    team_id = purchase.team_id
    cents = units_to_cents_exact(purchase.amount)
    return await _issue(
        conn,
        team_id=team_id,
        kind=InvoiceKind.CREDIT_PURCHASE,
        source_key=key,
        lines=[LineView("Prepaid credits", 1, cents, cents)],
        status=InvoiceStatus.PAID,
        purchase_id=purchase.id,
        paid_at=purchase.settled_at or clock.now(),
        payment_intent_id=purchase.payment_intent_id,
        payment_method_id=purchase.payment_method_id,
    )


def monthly_key(team_id: uuid.UUID, period: str) -> str:
    return f"monthly:{team_id}:{period}"


async def issue_monthly_invoice(team_id: uuid.UUID, period: str) -> tuple[Invoice | None, bool]:
    """The team's MONTHLY_USAGE invoice for a closed `period`: (invoice, issued by this call).

    (None, False) when the team has no invoiced usage in the period. Reads the usage under
    the team's account lock, after the period was marked closed, so no usage can land
    after the read. The `source_key`, unique per team, decides which of several closers
    issues it.
    """
    key = monthly_key(team_id, period)
    try:
        async with atomic() as tx:
            conn = tx.conn
            await lock_account(team_id, conn)
            row = await InvoicedPeriod.filter(team_id=team_id, period=period).using_db(conn).first()
            if row is None or row.amount <= 0:
                return None, False
            lines = await usage_lines(team_id, period, conn)
            itemised = sum(line.exact_units or 0 for line in lines)
            if itemised != row.amount:
                # The gate's running sum and the records disagree: bill what is itemised.
                log.error(
                    "invoice.usage_mismatch",
                    team_id=str(team_id),
                    period=period,
                    invoiced_period=row.amount,
                    itemised=itemised,
                )
            total = sum(line.amount_cents for line in lines)
            invoice = await _issue(
                conn,
                team_id=team_id,
                kind=InvoiceKind.MONTHLY_USAGE,
                source_key=key,
                lines=lines,
                # Nothing to pay (usage under half a cent): settled at issue.
                status=InvoiceStatus.OPEN if total > 0 else InvoiceStatus.PAID,
                period=period,
                paid_at=None if total > 0 else clock.now(),
            )
            return invoice, True
    except IntegrityError:
        existing = await Invoice.get_or_none(team_id=team_id, source_key=key)
        if existing is None:
            raise
        return existing, False
