"""GraphQL object types: thin views over domain models and service results."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.credits import history
from app.credits import service as credits
from app.credits.models import CreditKind as DomainCreditKind
from app.credits.rules import BillingStatus as DomainBillingStatus
from app.credits.store import GrantRow, UsageRow
from app.graphql.scalars import Decimal
from app.kit import clock
from app.kit.money import format_units
from app.teams import service as teams
from app.teams.models import Role as DomainRole

# The domain enums are the GraphQL enums; strawberry.enum registers them in place.
strawberry.enum(DomainRole, name="Role")
strawberry.enum(DomainCreditKind, name="CreditKind")
Role = DomainRole
CreditKind = DomainCreditKind


strawberry.enum(DomainBillingStatus, name="BillingStatus")
BillingStatus = DomainBillingStatus


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


@strawberry.type(description="At the trailing 7 days' burn; nulls when nothing burns.")
class Runway:
    runway: strawberry.Private[history.Runway]

    @strawberry.field(description="usage of the last 7 days, divided by 7")
    def daily_burn(self) -> Decimal:
        return money(self.runway.daily_burn)

    @strawberry.field(
        description="days until `available` (credits, then the invoiced headroom) is used"
    )
    def days_left(self) -> float | None:
        return self.runway.days_left

    @strawberry.field
    def exhausts_at(self) -> datetime | None:
        return self.runway.exhausts_at

    @strawberry.field(description="days until the credits alone are used")
    def credits_days_left(self) -> float | None:
        return self.runway.credits_days_left

    @strawberry.field
    def credits_exhaust_at(self) -> datetime | None:
        return self.runway.credits_exhaust_at


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

    @strawberry.field(description="reserved by open holds: not available to usage or new holds")
    def held(self) -> Decimal:
        return money(self.view.held)

    @strawberry.field(description="total + invoicedRemaining - held, never below 0")
    def available(self) -> Decimal:
        return money(self.view.available)

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

    @strawberry.field(description="when credits, then the invoiced headroom, run out")
    async def runway(self) -> Runway:
        view = self.view
        now = clock.now()
        team_id = view.team_id
        burn = await history.trailing_burn(team_id, now) if team_id is not None else 0
        credits_left = max(view.total - view.held, 0)
        return Runway(runway=history.runway_of(burn, credits_left, view.available, now))


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

    @strawberry.field(description="the event's dimensions, a flat map of strings; null when none")
    def dimensions(self) -> JSON | None:
        return JSON(self.record.dimensions) if self.record.dimensions is not None else None


@strawberry.type
class Member:
    email: str
    name: str | None
    role: Role
    pending: bool = strawberry.field(
        description="invited by email; a member only once that person accepts the invitation"
    )

    @classmethod
    def of(cls, member: teams.MemberView) -> Member:
        return cls(email=member.email, name=member.name, role=member.role, pending=member.pending)


@strawberry.type
class PageInfo:
    """Cursor pagination (shared by every connection: purchases, invoices)."""

    has_next_page: bool
    end_cursor: str | None
