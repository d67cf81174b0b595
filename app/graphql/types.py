"""GraphQL object types: thin views over domain models and service results."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types.nodes import SelectedField

from app.credits import service as credits
from app.credits.models import CreditKind as DomainCreditKind
from app.credits.store import GrantRow, UsageRow
from app.graphql.context import Info
from app.graphql.scalars import Decimal
from app.kit.money import format_units
from app.teams import service as teams
from app.teams.models import Role as DomainRole
from app.teams.models import Team as TeamModel

if TYPE_CHECKING:
    from app.graphql.audit import AuditLogConnection
    from app.graphql.invoices import BillingAddress, Invoice, InvoiceConnection
    from app.graphql.payments import PaymentMethod, PurchaseConnection
    from app.graphql.programs import AutoTopUp, BillingAlert

# The domain enums are the GraphQL enums; strawberry.enum registers them in place.
strawberry.enum(DomainRole, name="Role")
strawberry.enum(DomainCreditKind, name="CreditKind")
Role = DomainRole
CreditKind = DomainCreditKind


@strawberry.enum
class BillingStatus(Enum):
    ACTIVE = "ACTIVE"
    CREDITS_EXHAUSTED = "CREDITS_EXHAUSTED"
    INVOICED_LIMIT_REACHED = "INVOICED_LIMIT_REACHED"


def money(units: int) -> Decimal:
    return Decimal(format_units(units))


@strawberry.type
class CreditGrant:
    id: strawberry.ID
    kind: CreditKind
    amount: Decimal
    remaining: Decimal
    description: str | None
    granted_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, grant: GrantRow) -> CreditGrant:
        return cls(
            id=strawberry.ID(str(grant.id)),
            kind=grant.kind,
            amount=money(grant.amount),
            remaining=money(grant.remaining),
            description=grant.description,
            granted_at=grant.granted_at,
            expires_at=grant.expires_at,
        )


@strawberry.type
class Credits:
    view: strawberry.Private[credits.CreditsView]

    @strawberry.field(description="free + promotional + prepaid remaining")
    def total(self) -> Decimal:
        return money(self.view.total)

    @strawberry.field
    def free(self) -> Decimal:
        return money(self.view.free)

    @strawberry.field
    def promotional(self) -> Decimal:
        return money(self.view.promotional)

    @strawberry.field
    def prepaid(self) -> Decimal:
        return money(self.view.prepaid)

    @strawberry.field(description="0 by default: monthly invoiced billing is off")
    def invoiced_spending_limit(self) -> Decimal:
        return money(self.view.invoiced_limit)

    @strawberry.field
    def invoiced_this_month(self) -> Decimal:
        return money(self.view.invoiced_this_month)

    @strawberry.field(description="max(limit - invoicedThisMonth, 0)")
    def invoiced_remaining(self) -> Decimal:
        return money(self.view.invoiced_remaining)

    @strawberry.field(description="true while a failed monthly invoice is unpaid")
    def invoicing_suspended(self) -> bool:
        return self.view.invoicing_suspended

    @strawberry.field
    def status(self) -> BillingStatus:
        return BillingStatus(self.view.status)

    @strawberry.field(description="live grants, in the order they will be consumed")
    def grants(self) -> list[CreditGrant]:
        return [CreditGrant.of(g) for g in self.view.grants]

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.view.updated_at


@strawberry.type
class UsageRecord:
    """Each field is read from the record when a query asks for it: a batch of 1,000
    results that selects only `errors` formats no amounts."""

    record: strawberry.Private[UsageRow]

    @classmethod
    def of(cls, record: UsageRow) -> UsageRecord:
        return cls(record=record)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    def idempotency_key(self) -> str:
        return self.record.idempotency_key

    @strawberry.field
    def amount(self) -> Decimal:
        return money(self.record.amount)

    @strawberry.field
    def accepted(self) -> bool:
        return True

    @strawberry.field
    def from_free(self) -> Decimal:
        return money(self.record.from_free)

    @strawberry.field
    def from_promotional(self) -> Decimal:
        return money(self.record.from_promotional)

    @strawberry.field
    def from_prepaid(self) -> Decimal:
        return money(self.record.from_prepaid)

    @strawberry.field
    def invoiced(self) -> Decimal:
        return money(self.record.invoiced)

    @strawberry.field
    def description(self) -> str | None:
        return self.record.description

    @strawberry.field
    def occurred_at(self) -> datetime:
        return self.record.occurred_at


@strawberry.type
class Member:
    email: str
    name: str | None
    role: Role
    pending: bool = strawberry.field(
        description="invited by email; becomes a membership when that person first signs in"
    )

    @classmethod
    def of(cls, member: teams.MemberView) -> Member:
        return cls(email=member.email, name=member.name, role=member.role, pending=member.pending)


@strawberry.type
class PageInfo:
    """Cursor pagination (shared by every connection: purchases, invoices)."""

    has_next_page: bool
    end_cursor: str | None


# Credits fields that need the month's invoiced total.
_INVOICED_FIELDS = {"invoicedThisMonth", "invoicedRemaining", "status"}


def _selected_names(info: Info) -> set[str] | None:
    """The field names selected under the current field, or None when fragments make
    the selection uncertain (then everything is loaded)."""
    names: set[str] = set()
    for field in info.selected_fields:
        for selection in field.selections:
            if not isinstance(selection, SelectedField):
                return None
            names.add(selection.name)
    return names


@strawberry.type
class Team:
    model: strawberry.Private[TeamModel]
    viewer_role: Role | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.id))

    @strawberry.field
    def name(self) -> str:
        return self.model.name

    @strawberry.field
    async def members(self) -> list[Member]:
        return [Member.of(m) for m in await teams.members(self.model)]

    @strawberry.field
    async def credits(self, info: Info) -> Credits:
        wanted = _selected_names(info)
        view = await credits.credits_view(
            self.model.id,
            with_grants=wanted is None or "grants" in wanted,
            with_invoiced=wanted is None or bool(wanted & _INVOICED_FIELDS),
        )
        return Credits(view=view)

    @strawberry.field(description="cards and bank accounts on file, the default first")
    async def payment_methods(
        self,
    ) -> list[Annotated[PaymentMethod, strawberry.lazy("app.graphql.payments")]]:
        from app.graphql.payments import team_payment_methods

        return await team_payment_methods(self.model.id)

    @strawberry.field(description="credit purchases, newest first")
    async def purchases(
        self, first: int | None = 20, after: str | None = None
    ) -> Annotated[PurchaseConnection, strawberry.lazy("app.graphql.payments")]:
        from app.graphql.payments import team_purchases

        return await team_purchases(self.model.id, 20 if first is None else first, after)

    @strawberry.field(description="printed on invoices issued from now on")
    async def billing_address(
        self,
    ) -> Annotated[BillingAddress, strawberry.lazy("app.graphql.invoices")] | None:
        from app.graphql.invoices import team_billing_address

        return await team_billing_address(self.model.id)

    @strawberry.field(description="invoices, newest first")
    async def invoices(
        self, first: int | None = 20, after: str | None = None
    ) -> Annotated[InvoiceConnection, strawberry.lazy("app.graphql.invoices")]:
        from app.graphql.invoices import team_invoices

        return await team_invoices(self.model.id, 20 if first is None else first, after)

    @strawberry.field(description="preview of this month's invoiced usage, null when none")
    async def upcoming_invoice(
        self,
    ) -> Annotated[Invoice, strawberry.lazy("app.graphql.invoices")] | None:
        from app.graphql.invoices import team_upcoming_invoice

        return await team_upcoming_invoice(self.model.id)

    @strawberry.field
    async def auto_top_up(self) -> Annotated[AutoTopUp, strawberry.lazy("app.graphql.programs")]:
        from app.graphql.programs import team_auto_top_up

        return await team_auto_top_up(self.model.id)

    @strawberry.field(description="billing alerts, newest first (at most 100)")
    async def alerts(
        self, first: int | None = 20
    ) -> list[Annotated[BillingAlert, strawberry.lazy("app.graphql.programs")]]:
        from app.graphql.programs import team_alerts

        return await team_alerts(self.model.id, 20 if first is None else first)

    @strawberry.field(
        description="who changed billing settings and members, newest first; admins only"
    )
    async def audit_log(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Annotated[AuditLogConnection, strawberry.lazy("app.graphql.audit")]:
        from app.graphql.audit import team_audit_log

        return await team_audit_log(info, self.model.id, self.viewer_role, first, after)

    @classmethod
    def of(cls, access: teams.TeamAccess) -> Team:
        return cls(model=access.team, viewer_role=access.role)


@strawberry.type
class Membership:
    team: Team
    role: Role


@strawberry.type
class Viewer:
    id: strawberry.ID
    email: str
    name: str | None
    is_operator: bool

    @strawberry.field
    async def memberships(self, info: Info) -> list[Membership]:
        viewer = await info.context.viewer()
        return [
            Membership(team=Team(model=team, viewer_role=role), role=role)
            for team, role in await teams.memberships(viewer)
        ]
