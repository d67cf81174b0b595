"""Invoices and billing details: types, Team fields and `InvoicesMutation`."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from app.billing import collection
from app.graphql import inputs, throttle
from app.graphql.audit import actor as audit_actor
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.scalars import Decimal
from app.graphql.types import PageInfo, money
from app.invoices import address as addresses
from app.invoices import documents, links
from app.invoices.models import InvoiceKind as DomainInvoiceKind
from app.invoices.models import InvoiceStatus as DomainInvoiceStatus
from app.kit import origin
from app.kit.errors import DomainError, ErrorCode
from app.kit.ids import parse_uuid
from app.kit.money import cents_to_units
from app.payments.models import PaymentMethodType
from app.teams import service as teams

strawberry.enum(DomainInvoiceKind, name="InvoiceKind")
strawberry.enum(DomainInvoiceStatus, name="InvoiceStatus")
InvoiceKind = DomainInvoiceKind
InvoiceStatus = DomainInvoiceStatus


def cents(value: int) -> Decimal:
    return money(cents_to_units(value))


@strawberry.type(description="Stripe tax id types: eu_vat, gb_vat, us_ein, ...")
class TaxId:
    type: str
    value: str


@strawberry.type
class BillingAddress:
    name: str
    organization: str | None
    email: str | None
    line1: str
    line2: str | None
    city: str
    state: str | None
    postal_code: str | None
    country: str = strawberry.field(description="ISO 3166-1 alpha-2")
    tax_id: TaxId | None

    @classmethod
    def of(cls, address: addresses.Address) -> BillingAddress:
        tax = address.tax_id
        return cls(
            name=address.name,
            organization=address.organization,
            email=address.email,
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            state=address.state,
            postal_code=address.postal_code,
            country=address.country,
            tax_id=TaxId(type=tax.type, value=tax.value) if tax else None,
        )


@strawberry.type(description="who issued the invoice, as configured when it was issued")
class InvoiceSeller:
    name: str
    address: list[str] = strawberry.field(description="the postal address, one line each")
    tax_id: str | None
    email: str | None = strawberry.field(description="where to ask about the invoice")


@strawberry.type(description="the payment method that paid the invoice, or is charged for it")
class InvoicePaymentMethod:
    type: PaymentMethodType
    brand: str | None = strawberry.field(description="the card brand, or the bank's name")
    last4: str
    description: str = strawberry.field(description='as the PDF prints it: "Visa ending in 4242"')


@strawberry.type
class InvoiceLine:
    description: str
    quantity: Decimal
    unit_amount: Decimal
    amount: Decimal
    exact_amount: Decimal | None = strawberry.field(
        description="usage lines: the exact sum, before it was rounded (half-up) to cents"
    )

    @classmethod
    def of(cls, line: documents.LineView) -> InvoiceLine:
        return cls(
            description=line.description,
            quantity=Decimal(str(line.quantity)),
            unit_amount=cents(line.unit_amount_cents),
            amount=cents(line.amount_cents),
            exact_amount=money(line.exact_units) if line.exact_units is not None else None,
        )


@strawberry.type
class Invoice:
    document: strawberry.Private[documents.InvoiceDocument]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.document.id)

    @strawberry.field(
        description='gap-free per year, e.g. "CL-2026-000042"; UPCOMING for a preview'
    )
    def number(self) -> str:
        return self.document.number

    @strawberry.field
    def kind(self) -> InvoiceKind:
        return self.document.kind

    @strawberry.field
    def status(self) -> InvoiceStatus:
        return self.document.status

    @strawberry.field
    def currency(self) -> str:
        return self.document.currency

    @strawberry.field(description='monthly usage: the month, "YYYY-MM" (UTC)')
    def period(self) -> str | None:
        return self.document.period

    @strawberry.field
    def period_start(self) -> datetime | None:
        return self.document.period_start

    @strawberry.field
    def period_end(self) -> datetime | None:
        return self.document.period_end

    @strawberry.field
    def subtotal(self) -> Decimal:
        return cents(self.document.subtotal_cents)

    @strawberry.field
    def tax(self) -> Decimal:
        return cents(self.document.tax_cents)

    @strawberry.field(description="the sum of the (rounded) lines, plus tax")
    def total(self) -> Decimal:
        return cents(self.document.total_cents)

    @strawberry.field
    def lines(self) -> list[InvoiceLine]:
        return [InvoiceLine.of(line) for line in self.document.lines]

    @strawberry.field(description="as it was when the invoice was issued")
    def billing_address(self) -> BillingAddress | None:
        address = self.document.billing_address
        return BillingAddress.of(address) if address else None

    @strawberry.field
    def seller(self) -> InvoiceSeller:
        seller = self.document.seller
        return InvoiceSeller(
            name=seller.name,
            address=list(seller.address_lines),
            tax_id=seller.tax_id,
            email=seller.email,
        )

    @strawberry.field(
        description="the period in words, its last day included: "
        '"1 October 2026 \u2013 31 October 2026"'
    )
    def period_text(self) -> str | None:
        return self.document.period_text

    @strawberry.field
    def payment_method(self) -> InvoicePaymentMethod | None:
        method = self.document.payment_method
        if method is None:
            return None
        return InvoicePaymentMethod(
            type=method.type, brand=method.brand, last4=method.last4, description=method.text()
        )

    @strawberry.field
    def issued_at(self) -> datetime:
        return self.document.issued_at

    @strawberry.field
    def paid_at(self) -> datetime | None:
        return self.document.paid_at

    @strawberry.field(description="why the last charge failed (PAYMENT_FAILED)")
    def failure_reason(self) -> str | None:
        if self.document.status is not InvoiceStatus.PAYMENT_FAILED:
            return None
        return self.document.failure_message

    @strawberry.field(
        description="a signed link to the PDF; it expires after 24 hours, and a member's "
        "stops working when they leave the team"
    )
    async def pdf_url(self, info: Info) -> str:
        settings = info.context.settings
        viewer = await info.context.viewer()
        member = None if viewer.is_operator else viewer.user.id
        base = origin.public_base(
            settings.public_url, info.context.request, settings.trusted_proxies
        )
        if self.document.draft:
            return links.upcoming_pdf_url(settings, base, self.document.team_id, member)
        document = self.document
        return links.invoice_pdf_url(settings, base, document.team_id, document.id, member)


@strawberry.type
class InvoiceEdge:
    node: Invoice
    cursor: str


@strawberry.type
class InvoiceConnection:
    edges: list[InvoiceEdge]
    page_info: PageInfo


# --- Team fields (resolvers called from app.graphql.types.Team) ----------------------------------


async def team_billing_address(team_id: uuid.UUID) -> BillingAddress | None:
    address = await addresses.billing_address(team_id)
    return BillingAddress.of(address) if address else None


async def team_invoices(team_id: uuid.UUID, first: int, after: str | None) -> InvoiceConnection:
    page = await documents.list_invoices(team_id, first, after)
    edges = [
        InvoiceEdge(node=Invoice(document=doc), cursor=documents.document_cursor(doc))
        for doc in page.items
    ]
    return InvoiceConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )


async def team_upcoming_invoice(team_id: uuid.UUID) -> Invoice | None:
    document = await documents.upcoming_invoice(team_id)
    return Invoice(document=document) if document else None


async def purchase_invoice(team_id: uuid.UUID, purchase_id: uuid.UUID) -> Invoice | None:
    document = await documents.purchase_invoice(team_id, purchase_id)
    return Invoice(document=document) if document else None


# --- mutations -----------------------------------------------------------------------------------


@strawberry.input
class TaxIdInput:
    type: str
    value: str


@strawberry.input
class UpdateBillingAddressInput:
    team_id: strawberry.ID
    name: str
    organization: str | None = None
    email: str | None = None
    line1: str
    line2: str | None = None
    city: str
    state: str | None = None
    postal_code: str | None = None
    country: str = strawberry.field(description="ISO 3166-1 alpha-2")
    tax_id: TaxIdInput | None = strawberry.field(
        default=None, description="null or absent: the team has no tax id"
    )


@strawberry.type
class UpdateBillingAddressPayload:
    billing_address: BillingAddress | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PayInvoiceInput:
    team_id: strawberry.ID
    invoice_id: strawberry.ID


@strawberry.type
class PayInvoicePayload:
    invoice: Invoice | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class InvoicesMutation:
    @strawberry.mutation(
        description="Admins: the billing details printed on invoices from now on "
        "(issued invoices keep theirs). Each problem is an INVALID_INPUT naming its field."
    )
    @inputs.checks_own_text
    async def update_billing_address(
        self, info: Info, input: UpdateBillingAddressInput
    ) -> UpdateBillingAddressPayload:
        refused = inputs.refused_argument({"input": input})
        if refused is not None:
            return UpdateBillingAddressPayload(errors=[UserError.of(refused)])
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        data = addresses.AddressInput(
            name=input.name,
            organization=input.organization,
            email=input.email,
            line1=input.line1,
            line2=input.line2,
            city=input.city,
            state=input.state,
            postal_code=input.postal_code,
            country=input.country,
            tax_id_type=input.tax_id.type if input.tax_id else None,
            tax_id_value=input.tax_id.value if input.tax_id else None,
            tax_id_given=input.tax_id is not None,
        )
        try:
            # Not a payload_errors mutation: the rate limit is checked here, before the change.
            await throttle.check(info, input)
            address = await addresses.update_billing_address(
                access.team.id, data, actor=await audit_actor(info)
            )
        except addresses.InvalidAddress as invalid:
            return UpdateBillingAddressPayload(errors=[UserError.of(e) for e in invalid.errors])
        except DomainError as error:
            return UpdateBillingAddressPayload(errors=[UserError.of(error)])
        return UpdateBillingAddressPayload(billing_address=BillingAddress.of(address))

    @strawberry.mutation(
        description="Admins: charge an unpaid invoice to the default payment method now "
        "(e.g. after adding a card). A decline answers PAYMENT_FAILED with the invoice."
    )
    @inputs.checks_own_text
    async def pay_invoice(self, info: Info, input: PayInvoiceInput) -> PayInvoicePayload:
        refused = inputs.refused_argument({"input": input})
        if refused is not None:
            return PayInvoicePayload(errors=[UserError.of(refused)])
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        invoice_id = parse_uuid(input.invoice_id)
        try:
            await throttle.check(info, input)
            if invoice_id is None:
                raise DomainError(ErrorCode.NOT_FOUND, "No such invoice.", "invoiceId")
            document = await collection.pay_invoice(access.team.id, invoice_id)
        except collection.PaymentFailed as failed:
            return PayInvoicePayload(
                invoice=Invoice(document=failed.document), errors=[UserError.of(failed)]
            )
        except DomainError as error:
            return PayInvoicePayload(errors=[UserError.of(error)])
        return PayInvoicePayload(invoice=Invoice(document=document))
