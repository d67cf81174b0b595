"""Payment methods and credit purchases: types, Team fields and `PaymentsMutation`."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from app.billing import purchases
from app.graphql.audit import actor as audit_actor
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.invoices import Invoice, purchase_invoice
from app.graphql.payloads import CreditsPayloadMixin, payload_errors
from app.graphql.scalars import Decimal
from app.graphql.types import PageInfo, money
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import parse_field
from app.payments import history, methods, settlement
from app.payments.models import PaymentMethod as PaymentMethodModel
from app.payments.models import PaymentMethodType as DomainPaymentMethodType
from app.payments.models import Purchase as PurchaseModel
from app.payments.models import PurchaseMethod as DomainPurchaseMethod
from app.payments.models import PurchaseStatus as DomainPurchaseStatus
from app.teams import service as teams

strawberry.enum(DomainPaymentMethodType, name="PaymentMethodType")
strawberry.enum(DomainPurchaseMethod, name="PurchaseMethod")
strawberry.enum(DomainPurchaseStatus, name="PurchaseStatus")
PaymentMethodType = DomainPaymentMethodType
PurchaseMethod = DomainPurchaseMethod
PurchaseStatus = DomainPurchaseStatus


@strawberry.type
class PaymentMethod:
    id: strawberry.ID
    type: PaymentMethodType
    brand: str | None = strawberry.field(description="card brand, or the bank's name")
    last4: str
    exp_month: int | None
    exp_year: int | None
    is_default: bool
    created_at: datetime
    removed: bool = strawberry.field(description="taken off file (shown on past purchases)")

    @classmethod
    def of(cls, method: PaymentMethodModel) -> PaymentMethod:
        return cls(
            id=strawberry.ID(str(method.id)),
            type=method.type,
            brand=method.brand,
            last4=method.last4,
            exp_month=method.exp_month,
            exp_year=method.exp_year,
            is_default=method.is_default,
            created_at=method.created_at,
            removed=method.removed_at is not None,
        )


@strawberry.type
class Purchase:
    model: strawberry.Private[PurchaseModel]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.id))

    @strawberry.field
    def amount(self) -> Decimal:
        return money(self.model.amount)

    @strawberry.field
    def method(self) -> PurchaseMethod:
        return self.model.method

    @strawberry.field
    def status(self) -> PurchaseStatus:
        return self.model.status

    @strawberry.field
    async def payment_method(self) -> PaymentMethod | None:
        method_id = self.model.payment_method_id
        if method_id is None:
            return None
        found = await methods.methods_by_id(self.model.team_id, [method_id])
        method = found.get(method_id)
        return PaymentMethod.of(method) if method else None

    @strawberry.field(description="only while REQUIRES_ACTION (3-D Secure): for Stripe.js")
    def client_secret(self) -> str | None:
        if self.model.status is not PurchaseStatus.REQUIRES_ACTION:
            return None
        return self.model.client_secret

    @strawberry.field
    def payment_intent_id(self) -> str | None:
        return self.model.payment_intent_id

    @strawberry.field
    def failure_reason(self) -> str | None:
        return self.model.failure_reason

    @strawberry.field(description="bank transfers: when the credits are expected")
    def expected_settlement_at(self) -> datetime | None:
        if self.model.status is not PurchaseStatus.PROCESSING:
            return None
        return self.model.expected_settlement_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.model.created_at

    @strawberry.field
    def settled_at(self) -> datetime | None:
        return self.model.settled_at

    @strawberry.field(description="refunded through Stripe, in total")
    def refunded_amount(self) -> Decimal:
        return money(self.model.refunded_amount)

    @strawberry.field(description="disputed by the cardholder (chargeback)")
    def disputed_amount(self) -> Decimal:
        return money(self.model.disputed_amount)

    @strawberry.field(
        description="unspent credits of this purchase taken back for refunds and disputes"
    )
    def withdrawn_amount(self) -> Decimal:
        return money(self.model.withdrawn_amount)

    @strawberry.field(
        description="disputed credits already spent, so not withdrawn: owed by the team"
    )
    def shortfall_amount(self) -> Decimal:
        return money(self.model.shortfall_amount)

    @strawberry.field(
        description="what is still owed of the shortfall (invoiced billing is suspended "
        "while any is); the next purchase pays it first, a won dispute clears it"
    )
    def shortfall_owed(self) -> Decimal:
        return money(settlement.outstanding(self.model))

    @strawberry.field(description="when the dispute was decided for the team")
    def dispute_won_at(self) -> datetime | None:
        return self.model.dispute_won_at

    @strawberry.field(description="the CREDIT_PURCHASE invoice, once the purchase succeeded")
    async def invoice(self) -> Invoice | None:
        return await purchase_invoice(self.model.team_id, self.model.id)


@strawberry.type
class PurchaseEdge:
    node: Purchase
    cursor: str


@strawberry.type
class PurchaseConnection:
    edges: list[PurchaseEdge]
    page_info: PageInfo


async def team_purchases(team_id: uuid.UUID, first: int, after: str | None) -> PurchaseConnection:
    page = await history.purchase_page(team_id, first, after)
    edges = [
        PurchaseEdge(node=Purchase(model=p), cursor=c)
        for p, c in zip(page.purchases, page.cursors, strict=True)
    ]
    return PurchaseConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None
        ),
    )


async def team_payment_methods(team_id: uuid.UUID) -> list[PaymentMethod]:
    return [PaymentMethod.of(m) for m in await methods.payment_methods(team_id)]


# --- mutations ----------------------------------------------------------------------------------


@strawberry.input
class CreateSetupIntentInput:
    team_id: strawberry.ID
    type: PaymentMethodType = PaymentMethodType.CARD


@strawberry.type
class CreateSetupIntentPayload:
    client_secret: str | None = strawberry.field(
        default=None, description="for Stripe.js confirmCardSetup / confirmUsBankAccountSetup"
    )
    setup_intent_id: str | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AddPaymentMethodInput:
    team_id: strawberry.ID
    stripe_payment_method_id: str
    make_default: bool | None = None


@strawberry.type
class AddPaymentMethodPayload:
    payment_method: PaymentMethod | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetDefaultPaymentMethodInput:
    team_id: strawberry.ID
    payment_method_id: strawberry.ID


@strawberry.type
class SetDefaultPaymentMethodPayload:
    payment_method: PaymentMethod | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RemovePaymentMethodInput:
    team_id: strawberry.ID
    payment_method_id: strawberry.ID


@strawberry.type
class RemovePaymentMethodPayload:
    removed_payment_method_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PurchaseCreditsInput:
    team_id: strawberry.ID
    amount: Decimal
    method: PurchaseMethod = PurchaseMethod.CARD
    payment_method_id: strawberry.ID | None = strawberry.field(
        default=None, description="a saved method; the default when absent"
    )
    stripe_payment_method_id: str | None = strawberry.field(
        default=None, description="a new method from Stripe.js; saved on success"
    )
    idempotency_key: str | None = None


@strawberry.type
class PurchaseCreditsPayload(CreditsPayloadMixin):
    purchase: Purchase | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _failure(purchase: PurchaseModel) -> list[UserError]:
    if purchase.status in (PurchaseStatus.FAILED, PurchaseStatus.CANCELED):
        reason = purchase.failure_reason or "The payment failed."
        return [UserError.of(DomainError(ErrorCode.PAYMENT_FAILED, reason, None))]
    return []


@strawberry.type
class PaymentsMutation:
    @strawberry.mutation(description="Admin: a SetupIntent whose client secret Stripe.js confirms.")
    @payload_errors(CreateSetupIntentPayload)
    async def create_setup_intent(
        self, info: Info, input: CreateSetupIntentInput
    ) -> CreateSetupIntentPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        intent = await methods.create_setup_intent(access.team.id, input.type)
        return CreateSetupIntentPayload(
            client_secret=intent.client_secret, setup_intent_id=intent.id
        )

    @strawberry.mutation(description="Admin: keeps a method from Stripe.js on file.")
    @payload_errors(AddPaymentMethodPayload)
    async def add_payment_method(
        self, info: Info, input: AddPaymentMethodInput
    ) -> AddPaymentMethodPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        method = await methods.add_payment_method(
            access.team.id,
            input.stripe_payment_method_id,
            make_default=input.make_default,
            actor=await audit_actor(info),
        )
        return AddPaymentMethodPayload(payment_method=PaymentMethod.of(method))

    @strawberry.mutation
    @payload_errors(SetDefaultPaymentMethodPayload)
    async def set_default_payment_method(
        self, info: Info, input: SetDefaultPaymentMethodInput
    ) -> SetDefaultPaymentMethodPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        method = await methods.set_default_payment_method(
            access.team.id, input.payment_method_id, actor=await audit_actor(info)
        )
        return SetDefaultPaymentMethodPayload(payment_method=PaymentMethod.of(method))

    @strawberry.mutation(description="Admin: never the last method (LAST_PAYMENT_METHOD).")
    @payload_errors(RemovePaymentMethodPayload)
    async def remove_payment_method(
        self, info: Info, input: RemovePaymentMethodInput
    ) -> RemovePaymentMethodPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        removed = await methods.remove_payment_method(
            access.team.id, input.payment_method_id, actor=await audit_actor(info)
        )
        return RemovePaymentMethodPayload(removed_payment_method_id=strawberry.ID(str(removed)))

    @strawberry.mutation(
        description="Admin: buys prepaid credits. A declined payment answers the FAILED "
        "purchase and PAYMENT_FAILED; REQUIRES_ACTION carries the clientSecret for 3-D Secure."
    )
    @payload_errors(PurchaseCreditsPayload)
    async def purchase_credits(
        self, info: Info, input: PurchaseCreditsInput
    ) -> PurchaseCreditsPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        amount = parse_field(input.amount, "amount", places=2)
        purchase = await purchases.purchase_credits(
            access.team.id,
            amount,
            method=input.method,
            payment_method_id=input.payment_method_id,
            stripe_payment_method_id=input.stripe_payment_method_id,
            idempotency_key=input.idempotency_key,
        )
        return PurchaseCreditsPayload(
            purchase=Purchase(model=purchase), errors=_failure(purchase), team_id=access.team.id
        )
