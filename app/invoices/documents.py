"""Invoices as the API and the PDF show them, and reading them.

An issued invoice is a legal document: its number, lines, totals and frozen billing
details never change; only its payment state moves (OPEN -> PAID, or OPEN ->
PAYMENT_FAILED -> PAID). Money on invoices is in cents; usage is summed exactly in
units and rounded half-up once per line, and totals are sums of rounded lines.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.functions import Sum

from app.credits.models import InvoicedPeriod, UsageRecord
from app.invoices.address import Address
from app.invoices.models import BillingAddress, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from app.invoices.seller import Seller, current
from app.kit import clock
from app.kit.money import format_units, units_to_cents_half_up
from app.kit.pagination import decode_time_cursor, encode_time_cursor, page_size
from app.payments.models import PaymentMethod, PaymentMethodType

DEFAULT_USAGE_DESCRIPTION = "API usage"
OTHER_USAGE_DESCRIPTION = "Other usage"
# A metering gateway may send many distinct descriptions; past this many lines the
# smallest are summed (exactly) into one "Other usage" line.
MAX_LINES = 100


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    quantity: int
    unit_amount_cents: int
    amount_cents: int
    exact_units: int | None = None


@dataclass(frozen=True, slots=True)
class MethodView:
    """The payment method that paid (or is charged for) an invoice."""

    type: PaymentMethodType
    brand: str | None
    last4: str

    @classmethod
    def of(cls, method: PaymentMethod) -> MethodView:
        return cls(type=method.type, brand=method.brand, last4=method.last4)

    def text(self) -> str:
        """ "Visa ending in 4242", "STRIPE TEST BANK account ending in 6789"."""
        if self.type is PaymentMethodType.CARD:
            brand = (self.brand or "card").replace("_", " ")
            return f"{brand[:1].upper()}{brand[1:]} ending in {self.last4}"
        return f"{self.brand or 'Bank'} account ending in {self.last4}"


MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def date_in_words(value: datetime) -> str:
    """ "1 December 2026" (English, whatever the process locale)."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def period_in_words(start: datetime, end: datetime) -> str:
    """The period with its last day, not the exclusive end: "1 December 2026 to 31 December
    2026" with an en dash between the two."""
    last_day = max(start, end - timedelta(microseconds=1))
    return f"{date_in_words(start)} \u2013 {date_in_words(last_day)}"


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
    # Who issued it (as configured at issue) and what paid, or is charged, for it.
    seller: Seller = field(default_factory=current)
    payment_method: MethodView | None = None

    @property
    def period_text(self) -> str | None:
        if self.period_start is None or self.period_end is None:
            return None
        return period_in_words(self.period_start, self.period_end)

    @classmethod
    def of(
        cls,
        invoice: Invoice,
        lines: Sequence[InvoiceLine],
        methods: Mapping[uuid.UUID, MethodView] | None = None,
    ) -> InvoiceDocument:
        """`methods`: the payment methods by id (`methods_of`), for what paid."""
        team_id = invoice.team_id
        snapshot = invoice.billing_address
        sold_by = invoice.seller
        method_id = invoice.payment_method_id
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
            seller=Seller.from_json(sold_by) if isinstance(sold_by, dict) else current(),
            payment_method=(methods or {}).get(method_id) if method_id else None,
        )


async def methods_of(invoices: Sequence[Invoice]) -> dict[uuid.UUID, MethodView]:
    """The payment methods of `invoices` (removed ones too: they still paid)."""
    wanted = {i.payment_method_id for i in invoices if i.payment_method_id is not None}
    if not wanted:
        return {}
    teams = {i.team_id for i in invoices}
    rows = await PaymentMethod.filter(team_id__in=teams, id__in=wanted)
    return {m.id: MethodView.of(m) for m in rows}


def money_text(cents: int) -> str:
    """Cents as dollars for messages: 1234 -> "$12.34"."""
    return f"${format_units(cents * 1_000_000)}"


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


async def _lines(
    team_id: uuid.UUID, invoice_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[InvoiceLine]]:
    """The lines of the team's invoices, by invoice, in position order (one query, by the
    (team_id, invoice_id, position) key)."""
    found: dict[uuid.UUID, list[InvoiceLine]] = {i: [] for i in invoice_ids}
    if invoice_ids:
        rows = await InvoiceLine.filter(team_id=team_id, invoice_id__in=invoice_ids).order_by(
            "invoice_id", "position"
        )
        for line in rows:
            found[line.invoice_id].append(line)
    return found


async def _document(invoice: Invoice | None) -> InvoiceDocument | None:
    if invoice is None:
        return None
    lines = (await _lines(invoice.team_id, [invoice.id]))[invoice.id]
    return InvoiceDocument.of(invoice, lines, await methods_of([invoice]))


async def invoice_document(team_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceDocument | None:
    """The team's invoice (by its whole key: team, id)."""
    return await _document(await Invoice.get_or_none(team_id=team_id, id=invoice_id))


async def purchase_invoice(team_id: uuid.UUID, purchase_id: uuid.UUID) -> InvoiceDocument | None:
    """The invoice of one of the team's purchases."""
    key = f"purchase:{purchase_id}"
    return await _document(await Invoice.get_or_none(team_id=team_id, source_key=key))


@dataclass(frozen=True, slots=True)
class Page:
    items: list[InvoiceDocument]
    has_next_page: bool
    end_cursor: str | None


def document_cursor(document: InvoiceDocument) -> str:
    """Opaque position of an invoice in the newest-first list."""
    return encode_time_cursor(document.issued_at, uuid.UUID(document.id))


async def list_invoices(team_id: uuid.UUID, first: int = 20, after: str | None = None) -> Page:
    """The team's invoices, newest first; `after` is an `end_cursor` of a previous page."""
    first = page_size(first)
    query = Invoice.filter(team_id=team_id)
    if after:
        issued_at, ident = decode_time_cursor(after)
        query = query.filter(Q(issued_at__lt=issued_at) | Q(issued_at=issued_at, id__lt=ident))
    rows = await query.order_by("-issued_at", "-id").limit(first + 1)
    shown = rows[:first]
    methods = await methods_of(shown)
    lines = await _lines(team_id, [row.id for row in shown])
    items = [InvoiceDocument.of(row, lines[row.id], methods) for row in shown]
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
    default = await PaymentMethod.get_or_none(team_id=team_id, removed_at=None, is_default=True)
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
        payment_method=MethodView.of(default) if default else None,
    )
