"""Invoices: issue (purchases and the monthly close), the monthly charge, and reading.

An issued invoice is a legal document: its number, lines, totals and frozen billing
details never change; only its payment state moves (OPEN -> PAID, or OPEN ->
PAYMENT_FAILED -> PAID). Money on invoices is in cents; usage is summed exactly
in units and rounded half-up once per line, and totals are sums of rounded lines.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from app.credits import alerts
from app.credits.models import AlertKind, ClosedPeriod, CreditAccount, InvoicedPeriod, UsageRecord
from app.credits.service import lock_account
from app.events import bus
from app.events.commit import atomic
from app.invoices import numbering
from app.invoices.address import Address
from app.invoices.models import (
    BillingAddress,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    PeriodClose,
)
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.money import format_units, units_to_cents_exact, units_to_cents_half_up

log = structlog.get_logger(__name__)

DEFAULT_USAGE_DESCRIPTION = "API usage"
OTHER_USAGE_DESCRIPTION = "Other usage"
# A metering gateway may send many distinct descriptions; past this many lines the
# smallest are summed (exactly) into one "Other usage" line.
MAX_LINES = 100
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
MAX_PAGE = 100
_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class PurchaseLike(Protocol):
    """What a purchase invoice needs of `app.payments.models.Purchase`."""

    id: uuid.UUID
    team_id: uuid.UUID
    amount: int
    payment_intent_id: str | None
    settled_at: datetime | None


# --- documents (what the API and the PDF show) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    quantity: int
    unit_amount_cents: int
    amount_cents: int
    exact_units: int | None = None


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    """An issued invoice, or (`draft`) the preview of this month's usage invoice."""

    id: str
    team_id: uuid.UUID
    number: str
    kind: InvoiceKind
    status: InvoiceStatus
    currency: str
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    lines: list[LineView]
    billing_address: Address | None
    issued_at: datetime
    paid_at: datetime | None
    failure_message: str | None = None
    draft: bool = False

    @classmethod
    def of(cls, invoice: Invoice, lines: Sequence[InvoiceLine]) -> InvoiceDocument:
        team_id = invoice.team_id
        assert isinstance(team_id, uuid.UUID)
        snapshot = invoice.billing_address
        return cls(
            id=str(invoice.id),
            team_id=team_id,
            number=invoice.number,
            kind=invoice.kind,
            status=invoice.status,
            currency=invoice.currency,
            period=invoice.period,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            subtotal_cents=invoice.subtotal_cents,
            tax_cents=invoice.tax_cents,
            total_cents=invoice.total_cents,
            lines=[
                LineView(
                    description=line.description,
                    quantity=line.quantity,
                    unit_amount_cents=line.unit_amount_cents,
                    amount_cents=line.amount_cents,
                    exact_units=line.exact_units,
                )
                for line in sorted(lines, key=lambda line: line.position)
            ],
            billing_address=Address.from_json(snapshot) if isinstance(snapshot, dict) else None,
            issued_at=invoice.issued_at,
            paid_at=invoice.paid_at,
            failure_message=invoice.failure_message,
        )


def money_text(cents: int) -> str:
    """Cents as dollars for messages: 1234 -> "$12.34"."""
    return f"${format_units(cents * 1_000_000)}"


# --- lines -----------------------------------------------------------------------------------


async def usage_lines(
    team_id: uuid.UUID, period: str, conn: BaseDBAsyncClient | None = None
) -> list[LineView]:
    """One line per usage description: the exact invoiced sum, rounded half-up once."""
    query = (
        UsageRecord.filter(team_id=team_id, period=period, invoiced__gt=0)
        .annotate(total=Sum("invoiced"))
        .group_by("description")
    )
    if conn is not None:
        query = query.using_db(conn)
    sums: dict[str, int] = {}
    for row in await query.values("description", "total"):
        description = (row["description"] or "").strip() or DEFAULT_USAGE_DESCRIPTION
        # PostgreSQL sums BIGINT into NUMERIC (a Decimal): exact, and int() keeps it so.
        sums[description] = sums.get(description, 0) + int(row["total"])
    items = sorted(sums.items(), key=lambda item: (-item[1], item[0]))
    if len(items) > MAX_LINES:
        kept, rest = items[: MAX_LINES - 1], items[MAX_LINES - 1 :]
        items = [*kept, (OTHER_USAGE_DESCRIPTION, sum(units for _, units in rest))]
    lines = []
    for description, units in sorted(items, key=lambda item: item[0].casefold()):
        cents = units_to_cents_half_up(units)
        lines.append(LineView(description, 1, cents, cents, units))
    return lines


# --- issuing ---------------------------------------------------------------------------------


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
        purchase_id=purchase_id,
        issued_at=now,
        paid_at=paid_at,
        payment_intent_id=payment_intent_id,
    )
    await InvoiceLine.bulk_create(
        [
            InvoiceLine(
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
    return invoice


async def issue_purchase_invoice(conn: BaseDBAsyncClient, purchase: PurchaseLike) -> Invoice:
    """The PAID CREDIT_PURCHASE invoice of a succeeded purchase, issued once.

    Runs inside the transaction that credits the purchase (which holds the team's account
    lock), so the purchase and its invoice commit together.
    """
    key = f"purchase:{purchase.id}"
    existing = await Invoice.filter(source_key=key).using_db(conn).first()
    if existing is not None:
        return existing
    team_id = purchase.team_id
    assert isinstance(team_id, uuid.UUID)
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
    )


def monthly_key(team_id: uuid.UUID, period: str) -> str:
    return f"monthly:{team_id}:{period}"


async def issue_monthly_invoice(team_id: uuid.UUID, period: str) -> tuple[Invoice | None, bool]:
    """The team's MONTHLY_USAGE invoice for a closed `period`: (invoice, issued by this call).

    (None, False) when the team has no invoiced usage in the period. Reads the usage under
    the team's account lock, after the period was marked closed, so no usage can land
    after the read. The unique `source_key` decides which of several closers issues it.
    """
    key = monthly_key(team_id, period)
    try:
        async with in_transaction() as conn:
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
        existing = await Invoice.get_or_none(source_key=key)
        if existing is None:
            raise
        return existing, False


# --- the monthly close -----------------------------------------------------------------------


@dataclass
class CloseReport:
    period: str
    teams: int = 0
    issued: int = 0
    already_issued: int = 0
    paid: int = 0
    failed: int = 0
    unavailable: int = 0
    errors: int = 0
    invoices: list[uuid.UUID] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"closed {self.period}: {self.issued} invoices issued, {self.already_issued} "
            f"already issued, {self.paid} paid, {self.failed} payment failed, "
            f"{self.unavailable} Stripe unavailable, {self.errors} errors"
        )


def parse_period(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a "YYYY-MM" period; INVALID_INPUT on `period` otherwise."""
    if not _PERIOD.fullmatch(period):
        raise DomainError(ErrorCode.INVALID_INPUT, "A period is YYYY-MM, e.g. 2026-10.", "period")
    return clock.period_bounds(period)


def previous_period(now: datetime | None = None) -> str:
    return clock.period_of(clock.previous_month_start(now or clock.now()))


async def _teams_to_invoice(period: str) -> list[uuid.UUID]:
    """Teams that may have invoiced usage in `period`; read after the period was closed.

    Beside the teams with a row for the period, every team with an invoiced limit: a usage
    transaction that checked the period before it closed may still be inserting that
    team's first row. It holds the account lock, which issuing then waits for.
    """
    ids: set[object] = set(
        await InvoicedPeriod.filter(period=period, amount__gt=0).values_list("team_id", flat=True)
    )
    ids |= set(await CreditAccount.filter(invoiced_limit__gt=0).values_list("team_id", flat=True))
    return sorted(i for i in ids if isinstance(i, uuid.UUID))


async def close_month(period: str | None = None) -> CloseReport:
    """Closes a past month: marks it closed, issues each team's usage invoice, charges it.

    Safe to run again and from several workers at once (unique keys, charge leases); a
    run that stopped half-way is completed by the next one.
    """
    now = clock.now()
    period = period or previous_period(now)
    _, end = parse_period(period)
    if end > now:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{period} has not ended yet.", "period")
    # Committed before any usage is read: from here on, usage dated in the period is refused
    # (PERIOD_CLOSED), and what was accepted before is visible under each account lock.
    await ClosedPeriod.bulk_create(
        [ClosedPeriod(period=period, closed_at=now)], ignore_conflicts=True
    )
    await PeriodClose.bulk_create(
        [PeriodClose(period=period, started_at=now)], ignore_conflicts=True
    )
    report = CloseReport(period)
    for team_id in await _teams_to_invoice(period):
        try:
            invoice, issued = await issue_monthly_invoice(team_id, period)
        except Exception:
            log.exception("invoice.close_failed", team_id=str(team_id), period=period)
            report.errors += 1
            continue
        if invoice is None:
            continue
        report.teams += 1
        report.invoices.append(invoice.id)
        if issued:
            report.issued += 1
        else:
            report.already_issued += 1
        if invoice.status is InvoiceStatus.OPEN:
            outcome = await charge_invoice(invoice.id)
            _tally(report, outcome)
    if report.errors == 0:
        await PeriodClose.filter(period=period, completed_at__isnull=True).update(
            completed_at=clock.now()
        )
    log.info("invoice.close_month", summary=report.summary())
    return report


async def periods_to_close(now: datetime | None = None) -> list[str]:
    """Past periods whose close has not completed: the previous month, and any older one
    with invoiced usage (a close that never ran or stopped half-way)."""
    now = now or clock.now()
    current = clock.period_of(now)
    periods = {previous_period(now)}
    periods |= {
        str(p)
        for p in await InvoicedPeriod.filter(period__lt=current, amount__gt=0)
        .distinct()
        .values_list("period", flat=True)
    }
    done = set(
        await PeriodClose.filter(period__in=periods, completed_at__isnull=False).values_list(
            "period", flat=True
        )
    )
    return sorted(periods - done)


# --- charging --------------------------------------------------------------------------------


class ChargeOutcome(StrEnum):
    PAID = "PAID"
    FAILED = "FAILED"
    UNAVAILABLE = "UNAVAILABLE"  # Stripe not reached; nothing recorded, retried later
    PROCESSING = "PROCESSING"  # a bank debit under way; stays OPEN until it settles
    SKIPPED = "SKIPPED"  # not chargeable now (paid, below the minimum, or being charged)


def _tally(report: CloseReport | RetryReport, outcome: ChargeOutcome) -> None:
    if outcome is ChargeOutcome.PAID:
        report.paid += 1
    elif outcome is ChargeOutcome.FAILED:
        report.failed += 1
    elif outcome is ChargeOutcome.UNAVAILABLE:
        report.unavailable += 1


def retry_delay(attempts: int) -> timedelta:
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


async def charge_invoice(invoice_id: uuid.UUID) -> ChargeOutcome:
    """Charges an unpaid invoice to the team's default payment method, off-session.

    A lease on the row makes one worker charge it at a time; the idempotency key is built
    from the invoice id and the attempt, so a retry of an attempt whose outcome was never
    recorded (a crash, Stripe unreachable) can never charge twice at Stripe.
    """
    from app.payments import service as payments

    now = clock.now()
    claimed = (
        await Invoice.filter(
            id=invoice_id,
            status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED],
            total_cents__gte=MIN_CHARGE_CENTS,
        )
        .filter(Q(charging_until__isnull=True) | Q(charging_until__lte=now))
        .update(charging_until=now + CHARGE_LEASE)
    )
    if not claimed:
        return ChargeOutcome.SKIPPED
    invoice = await Invoice.get(id=invoice_id)
    team_id = invoice.team_id
    assert isinstance(team_id, uuid.UUID)
    if invoice.status is InvoiceStatus.OPEN and invoice.payment_intent_id:
        # A bank debit started earlier: its outcome, not a second charge.
        return await _follow_up(invoice, invoice.payment_intent_id)
    try:
        charge = await payments.charge_default_method_off_session(
            team_id,
            invoice.total_cents,
            idempotency_key=f"invoice:{invoice.id}:charge:{invoice.charge_attempts + 1}",
            description=f"Creditline invoice {invoice.number}",
            metadata={"invoice_id": str(invoice.id), "invoice_number": invoice.number},
        )
    except DomainError as error:
        if error.code is ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE:  # creating the customer
            return await _record_unavailable(invoice, error.message)
        # PAYMENT_METHOD_REQUIRED: nothing on file to charge.
        await _record_failure(invoice, error.message, None)
        return ChargeOutcome.FAILED
    if charge.succeeded:
        await _record_paid(invoice, charge.payment_intent_id)
        return ChargeOutcome.PAID
    if charge.processing:
        return await _record_processing(invoice, charge.payment_intent_id)
    if charge.payment_intent_id is None and charge.failure_message == payments.UNAVAILABLE_MESSAGE:
        return await _record_unavailable(invoice, charge.failure_message)
    await _record_failure(
        invoice, charge.failure_message or "The payment failed.", charge.payment_intent_id
    )
    return ChargeOutcome.FAILED


async def _record_unavailable(invoice: Invoice, message: str) -> ChargeOutcome:
    """Stripe was not reached: nothing recorded but a later retry (with the same key)."""
    log.warning("invoice.charge_unavailable", number=invoice.number, error=message)
    await Invoice.filter(id=invoice.id).update(
        charging_until=None, next_attempt_at=clock.now() + UNAVAILABLE_RETRY
    )
    return ChargeOutcome.UNAVAILABLE


async def _record_processing(invoice: Invoice, payment_intent_id: str | None) -> ChargeOutcome:
    """A bank debit under way: stays OPEN; later passes ask Stripe how it ended."""
    await Invoice.filter(id=invoice.id).update(
        payment_intent_id=payment_intent_id,
        charging_until=None,
        next_attempt_at=clock.now() + PROCESSING_RECHECK,
    )
    return ChargeOutcome.PROCESSING


async def _follow_up(invoice: Invoice, payment_intent_id: str) -> ChargeOutcome:
    from app.payments import service as payments
    from app.payments.stripe import PaymentGatewayError

    try:
        intent = await payments.gateway().retrieve_payment_intent(payment_intent_id)
    except PaymentGatewayError as exc:
        return await _record_unavailable(invoice, str(exc))
    if intent.status == "succeeded":
        await _record_paid(invoice, intent.id)
        return ChargeOutcome.PAID
    if intent.status in ("processing", "requires_confirmation"):
        return await _record_processing(invoice, intent.id)
    await _record_failure(
        invoice, intent.last_payment_error_message or "The bank debit failed.", intent.id
    )
    return ChargeOutcome.FAILED


async def _record_paid(invoice: Invoice, payment_intent_id: str | None) -> None:
    """PAID; lifts the team's suspension once no failed invoice is left."""
    team_id = invoice.team_id
    assert isinstance(team_id, uuid.UUID)
    async with in_transaction() as conn:
        locked = await lock_account(team_id, conn)
        await (
            Invoice.filter(id=invoice.id)
            .exclude(status=InvoiceStatus.PAID)
            .using_db(conn)
            .update(
                status=InvoiceStatus.PAID,
                paid_at=clock.now(),
                payment_intent_id=payment_intent_id,
                failure_message=None,
                next_attempt_at=None,
                charging_until=None,
            )
        )
        unpaid = (
            await Invoice.filter(team_id=team_id, status=InvoiceStatus.PAYMENT_FAILED)
            .using_db(conn)
            .exists()
        )
        resumed = locked.account.invoicing_suspended and not unpaid
        if resumed:
            locked.account.invoicing_suspended = False
            await locked.flush()
    log.info("invoice.paid", number=invoice.number, team_id=str(team_id))
    if resumed:
        await bus.credits_changed(team_id)


async def _record_failure(invoice: Invoice, message: str, payment_intent_id: str | None) -> None:
    """PAYMENT_FAILED, the team's invoiced billing suspended, and a PAYMENT_FAILED alert."""
    team_id = invoice.team_id
    assert isinstance(team_id, uuid.UUID)
    attempts = invoice.charge_attempts + 1
    now = clock.now()
    async with atomic() as tx:  # raise_alert publishes on its commit
        conn = tx.conn
        locked = await lock_account(team_id, conn)
        updated = await (
            Invoice.filter(
                id=invoice.id, status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED]
            )
            .using_db(conn)
            .update(
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
        await alerts.raise_alert(
            conn,
            team_id,
            AlertKind.PAYMENT_FAILED,
            f"The payment of invoice {invoice.number} ({money_text(invoice.total_cents)}) "
            f"failed: {message} Invoiced billing is suspended until it is paid.",
            period=invoice.period or clock.period_of(now),
            key=f"invoice:{invoice.number}",
        )
    log.warning("invoice.payment_failed", number=invoice.number, attempts=attempts, error=message)
    await bus.credits_changed(team_id)


@dataclass
class RetryReport:
    attempted: int = 0
    paid: int = 0
    failed: int = 0
    unavailable: int = 0

    def summary(self) -> str:
        return (
            f"retried {self.attempted} invoices: {self.paid} paid, {self.failed} failed, "
            f"{self.unavailable} Stripe unavailable"
        )


async def retry_payments(*, due_only: bool = True, limit: int = 500) -> RetryReport:
    """Charges unpaid usage invoices again (`due_only`: those whose retry time has come)."""
    query = Invoice.filter(
        kind=InvoiceKind.MONTHLY_USAGE,
        status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED],
        total_cents__gte=MIN_CHARGE_CENTS,
    )
    if due_only:
        query = query.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=clock.now()))
    ids = await query.order_by("issued_at").limit(limit).values_list("id", flat=True)
    report = RetryReport()
    for invoice_id in ids:
        assert isinstance(invoice_id, uuid.UUID)
        outcome = await charge_invoice(invoice_id)
        if outcome is not ChargeOutcome.SKIPPED:
            report.attempted += 1
        _tally(report, outcome)
    return report


async def pay_invoice(team_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceDocument:
    """An admin's "pay now" (e.g. after adding a card): charges the invoice at once."""
    invoice = await Invoice.get_or_none(id=invoice_id, team_id=team_id)
    if invoice is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such invoice.", "invoiceId")
    if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.PAYMENT_FAILED):
        if invoice.total_cents < MIN_CHARGE_CENTS:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"Amounts under {money_text(MIN_CHARGE_CENTS)} are not charged.",
                "invoiceId",
            )
        outcome = await charge_invoice(invoice.id)
        if outcome is ChargeOutcome.UNAVAILABLE:
            raise DomainError(
                ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE,
                "The payment provider could not be reached. Try again in a moment.",
            )
    document = await invoice_document(invoice.id)
    assert document is not None
    if document.status is InvoiceStatus.PAYMENT_FAILED:
        raise PaymentFailed(document)
    return document


class PaymentFailed(DomainError):
    """The charge was declined; carries the invoice as it now stands."""

    def __init__(self, document: InvoiceDocument) -> None:
        super().__init__(
            ErrorCode.PAYMENT_FAILED, document.failure_message or "The payment failed."
        )
        self.document = document


# --- reading ---------------------------------------------------------------------------------


async def invoice_document(invoice_id: uuid.UUID) -> InvoiceDocument | None:
    invoice = await Invoice.get_or_none(id=invoice_id)
    if invoice is None:
        return None
    lines = await InvoiceLine.filter(invoice_id=invoice.id)
    return InvoiceDocument.of(invoice, lines)


async def purchase_invoice(purchase_id: uuid.UUID) -> InvoiceDocument | None:
    invoice = await Invoice.get_or_none(source_key=f"purchase:{purchase_id}")
    if invoice is None:
        return None
    return InvoiceDocument.of(invoice, await InvoiceLine.filter(invoice_id=invoice.id))


@dataclass(frozen=True, slots=True)
class Page:
    items: list[InvoiceDocument]
    has_next_page: bool
    end_cursor: str | None


def document_cursor(document: InvoiceDocument) -> str:
    """Opaque position of an invoice in the newest-first list."""
    raw = f"{document.issued_at.isoformat()}|{document.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        issued, _, ident = raw.partition("|")
        return datetime.fromisoformat(issued), uuid.UUID(ident)
    except (ValueError, UnicodeError):
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a cursor of this list.", "after") from None


async def list_invoices(team_id: uuid.UUID, first: int = 20, after: str | None = None) -> Page:
    """The team's invoices, newest first; `after` is an `end_cursor` of a previous page."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError(ErrorCode.INVALID_INPUT, f"first is 0 to {MAX_PAGE}.", "first")
    query = Invoice.filter(team_id=team_id)
    if after:
        issued_at, ident = _parse_cursor(after)
        query = query.filter(Q(issued_at__lt=issued_at) | Q(issued_at=issued_at, id__lt=ident))
    rows = await query.order_by("-issued_at", "-id").limit(first + 1).prefetch_related("lines")
    items = [InvoiceDocument.of(row, list(row.lines)) for row in rows[:first]]
    return Page(
        items=items,
        has_next_page=len(rows) > first,
        end_cursor=document_cursor(items[-1]) if items else None,
    )


async def upcoming_invoice(team_id: uuid.UUID) -> InvoiceDocument | None:
    """This month's invoiced usage so far, as its invoice would look; None when there is none."""
    now = clock.now()
    period = clock.period_of(now)
    row = await InvoicedPeriod.get_or_none(team_id=team_id, period=period)
    if row is None or row.amount <= 0:
        return None
    lines = await usage_lines(team_id, period)
    address = await BillingAddress.get_or_none(team_id=team_id)
    start, end = clock.period_bounds(period)
    total = sum(line.amount_cents for line in lines)
    return InvoiceDocument(
        id=f"upcoming:{team_id}:{period}",
        team_id=team_id,
        number="UPCOMING",
        kind=InvoiceKind.MONTHLY_USAGE,
        status=InvoiceStatus.OPEN,
        currency="usd",
        period=period,
        period_start=start,
        period_end=end,
        subtotal_cents=total,
        tax_cents=0,
        total_cents=total,
        lines=lines,
        billing_address=Address.of(address) if address else None,
        issued_at=now,
        paid_at=None,
        draft=True,
    )


async def team_document(team_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceDocument:
    """One of the team's invoices; NotFound when it is not the team's."""
    document = await invoice_document(invoice_id)
    if document is None or document.team_id != team_id:
        raise NotFound()
    return document
