"""Collecting invoices: the monthly close with its charges, retries, and "pay now".

Charges go to the team's default payment method, off-session. A lease on the invoice
row makes one worker charge it at a time; the idempotency key is built from the
invoice id and the attempt, so a retry of an attempt whose outcome was never recorded
(a crash, Stripe unreachable) can never charge twice at Stripe.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import structlog

from app.invoices import close, collection
from app.invoices.collection import MIN_CHARGE_CENTS, ChargeOutcome
from app.invoices.documents import InvoiceDocument, invoice_document, money_text
from app.invoices.issuing import issue_monthly_invoice
from app.invoices.models import Invoice, InvoiceStatus
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.payments import charges
from app.payments.charges import ChargeStatus
from app.payments.gateway import UNAVAILABLE_MESSAGE, gateway
from app.payments.stripe import PaymentGatewayError

log = structlog.get_logger(__name__)


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


async def close_month(period: str | None = None) -> CloseReport:
    """Closes a past month: marks it closed, issues each team's usage invoice, charges it.

    Safe to run again and from several workers at once (unique keys, charge leases); a
    run that stopped half-way is completed by the next one.
    """
    now = clock.now()
    period = period or close.previous_period(now)
    _, end = close.parse_period(period)
    if end > now:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{period} has not ended yet.", "period")
    # Committed before any usage is read (see mark_closed).
    await close.mark_closed(period, now)
    report = CloseReport(period)
    for team_id in await close.teams_to_invoice(period):
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
            outcome = await charge_invoice(invoice.team_id, invoice.id)
            _tally(report, outcome)
    if report.errors == 0:
        await close.mark_completed(period)
    log.info("invoice.close_month", summary=report.summary())
    return report


def _tally(report: CloseReport | RetryReport, outcome: ChargeOutcome) -> None:
    if outcome is ChargeOutcome.PAID:
        report.paid += 1
    elif outcome is ChargeOutcome.FAILED:
        report.failed += 1
    elif outcome is ChargeOutcome.UNAVAILABLE:
        report.unavailable += 1


async def charge_invoice(team_id: uuid.UUID, invoice_id: uuid.UUID) -> ChargeOutcome:
    """Charges an unpaid invoice to the team's default payment method, off-session.

    A lease on the row makes one worker charge it at a time; the idempotency key is built
    from the invoice id and the attempt, so a retry of an attempt whose outcome was never
    recorded (a crash, Stripe unreachable) can never charge twice at Stripe.
    """
    invoice = await collection.claim(team_id, invoice_id)
    if invoice is None:
        return ChargeOutcome.SKIPPED
    if invoice.status is InvoiceStatus.OPEN and invoice.payment_intent_id:
        # A bank debit started earlier: its outcome, not a second charge.
        return await _follow_up(invoice, invoice.payment_intent_id)
    try:
        charge = await charges.charge_default_method_off_session(
            team_id,
            invoice.total_cents,
            idempotency_key=f"invoice:{invoice.id}:charge:{invoice.charge_attempts + 1}",
            description=f"Creditline invoice {invoice.number}",
            metadata={"invoice_id": str(invoice.id), "invoice_number": invoice.number},
        )
    except DomainError as error:
        if error.code is ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE:  # creating the customer
            return await collection.record_unavailable(invoice, error.message)
        # PAYMENT_METHOD_REQUIRED: nothing on file to charge.
        await collection.record_failure(invoice, error.message, None)
        return ChargeOutcome.FAILED
    charged = charge.payment_method_id
    if charge.status is ChargeStatus.SUCCEEDED:
        await collection.record_paid(invoice, charge.payment_intent_id, payment_method_id=charged)
        return ChargeOutcome.PAID
    if charge.status is ChargeStatus.PROCESSING:
        return await collection.record_processing(
            invoice, charge.payment_intent_id, payment_method_id=charged
        )
    if charge.status is ChargeStatus.UNAVAILABLE:
        return await collection.record_unavailable(invoice, UNAVAILABLE_MESSAGE)
    await collection.record_failure(
        invoice,
        charge.failure_message or "The payment failed.",
        charge.payment_intent_id,
        payment_method_id=charged,
    )
    return ChargeOutcome.FAILED


async def _follow_up(invoice: Invoice, payment_intent_id: str) -> ChargeOutcome:
    try:
        intent = await gateway().retrieve_payment_intent(payment_intent_id)
    except PaymentGatewayError as exc:
        return await collection.record_unavailable(invoice, str(exc))
    if intent.status == "succeeded":
        await collection.record_paid(invoice, intent.id)
        return ChargeOutcome.PAID
    if intent.status in ("processing", "requires_confirmation"):
        return await collection.record_processing(invoice, intent.id)
    await collection.record_failure(
        invoice, intent.last_payment_error_message or "The bank debit failed.", intent.id
    )
    return ChargeOutcome.FAILED


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
    report = RetryReport()
    for team_id, invoice_id in await collection.due_invoices(due_only=due_only, limit=limit):
        outcome = await charge_invoice(team_id, invoice_id)
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
        outcome = await charge_invoice(invoice.team_id, invoice.id)
        if outcome is ChargeOutcome.UNAVAILABLE:
            raise DomainError(ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE, UNAVAILABLE_MESSAGE)
    document = await invoice_document(team_id, invoice.id)
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
