"""The Team and Viewer types: every field of a team, gathered from the domain modules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types.nodes import SelectedField

from app.credits import service as credits
from app.graphql.audit import AuditLogConnection, team_audit_log
from app.graphql.context import Info
from app.graphql.holds import HoldConnection, HoldStatus, team_holds
from app.graphql.invitations import Invitation, team_invitations, viewer_invitations
from app.graphql.invoices import (
    BillingAddress,
    Invoice,
    InvoiceConnection,
    team_billing_address,
    team_invoices,
    team_upcoming_invoice,
)
from app.graphql.keys import TeamApiKey, team_api_keys
from app.graphql.payments import (
    PaymentMethod,
    PurchaseConnection,
    team_payment_methods,
    team_purchases,
)
from app.graphql.programs import AutoTopUp, BillingAlert, team_alerts, team_auto_top_up
from app.graphql.types import Credits, Member, Role
from app.graphql.usage import (
    ExportKind,
    Granularity,
    LedgerEntryConnection,
    UsageRecordConnection,
    UsageSeries,
    team_export_url,
    team_ledger,
    team_usage,
    team_usage_records,
)
from app.teams import service as teams
from app.teams.models import Team as TeamModel

# Credits fields that need the month's invoiced total.
_INVOICED_FIELDS = {"invoicedThisMonth", "invoicedRemaining", "status", "available", "runway"}


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

    @strawberry.field(description="open invitations, oldest first; admins only")
    async def invitations(self, info: Info) -> list[Invitation]:
        return await team_invitations(info, self.model, self.viewer_role)

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
    ) -> list[PaymentMethod]:

        return await team_payment_methods(self.model.id)

    @strawberry.field(description="credit purchases, newest first")
    async def purchases(
        self, first: int | None = 20, after: str | None = None
    ) -> PurchaseConnection:

        return await team_purchases(self.model.id, 20 if first is None else first, after)

    @strawberry.field(description="printed on invoices issued from now on")
    async def billing_address(
        self,
    ) -> BillingAddress | None:

        return await team_billing_address(self.model.id)

    @strawberry.field(description="invoices, newest first")
    async def invoices(self, first: int | None = 20, after: str | None = None) -> InvoiceConnection:

        return await team_invoices(self.model.id, 20 if first is None else first, after)

    @strawberry.field(description="preview of this month's invoiced usage, null when none")
    async def upcoming_invoice(
        self,
    ) -> Invoice | None:

        return await team_upcoming_invoice(self.model.id)

    @strawberry.field
    async def auto_top_up(self) -> AutoTopUp:

        return await team_auto_top_up(self.model.id)

    @strawberry.field(description="holds on the team's money, newest first")
    async def holds(
        self, first: int | None = 20, after: str | None = None, status: HoldStatus | None = None
    ) -> HoldConnection:
        return await team_holds(self.model.id, first, after, status)

    @strawberry.field(description="billing alerts, newest first (at most 100)")
    async def alerts(self, first: int | None = 20) -> list[BillingAlert]:

        return await team_alerts(self.model.id, 20 if first is None else first)

    @strawberry.field(
        description="who changed billing settings and members, newest first; admins only"
    )
    async def audit_log(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> AuditLogConnection:

        return await team_audit_log(info, self.model.id, self.viewer_role, first, after)

    @strawberry.field(description="the team's API keys, revoked ones included; admins only")
    async def api_keys(self, info: Info) -> list[TeamApiKey]:
        return await team_api_keys(info, self.model.id, self.viewer_role)

    @strawberry.field(
        description="usage per bucket (UTC) in [from, to), oldest first; groupBy is "
        '"description" or a dimension key'
    )
    async def usage(
        self,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        granularity: Granularity = Granularity.DAY,
        group_by: str | None = None,
    ) -> UsageSeries:
        return await team_usage(self.model.id, from_, to, granularity, group_by)

    @strawberry.field(description="usage records, newest first (by occurredAt)")
    async def usage_records(
        self,
        first: int | None = 20,
        after: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> UsageRecordConnection:
        return await team_usage_records(self.model.id, first, after, from_, to)

    @strawberry.field(
        description="every money movement, newest first: amount signed, the balance after it"
    )
    async def ledger(
        self,
        first: int | None = 20,
        after: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> LedgerEntryConnection:
        return await team_ledger(self.model.id, first, after, from_, to)

    @strawberry.field(
        description="a signed link to a CSV of usage records or ledger entries in [from, to); "
        "it expires after an hour, and a member's stops working when they leave the team"
    )
    async def export_url(
        self,
        info: Info,
        kind: ExportKind,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> str:
        return await team_export_url(info, self.model.id, kind, from_, to)

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

    @strawberry.field(description="invitations to your email, newest first: accept or decline")
    async def invitations(self, info: Info) -> list[Invitation]:
        return await viewer_invitations(info)
