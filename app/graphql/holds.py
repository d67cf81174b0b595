"""Holds in GraphQL: the `Hold` type and `Team.holds`, visible to the team's members."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.credits import holds
from app.credits.models import Hold as HoldModel
from app.credits.models import HoldStatus as DomainHoldStatus
from app.graphql.scalars import Decimal
from app.graphql.types import PageInfo, money
from app.kit import clock

strawberry.enum(DomainHoldStatus, name="HoldStatus")
HoldStatus = DomainHoldStatus


@strawberry.type(description="Money reserved for a request under way, until captured or freed.")
class Hold:
    model: strawberry.Private[HoldModel]
    read_at: strawberry.Private[datetime]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.id))

    @strawberry.field
    def team_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.team_id))

    @strawberry.field(description="what the hold reserves (or reserved)")
    def amount(self) -> Decimal:
        return money(self.model.amount)

    @strawberry.field(description="what its capture drew; 0 until captured")
    def captured(self) -> Decimal:
        return money(self.model.captured)

    @strawberry.field(description="a HELD hold past its expiry reads EXPIRED")
    def status(self) -> HoldStatus:
        return holds.status_of(self.model, self.read_at)

    @strawberry.field
    def idempotency_key(self) -> str:
        return self.model.idempotency_key

    @strawberry.field
    def description(self) -> str | None:
        return self.model.description

    @strawberry.field
    def dimensions(self) -> JSON | None:
        dimensions = self.model.dimensions
        return None if dimensions is None else JSON(dimensions)

    @strawberry.field
    def expires_at(self) -> datetime:
        return self.model.expires_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.model.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.model.updated_at


@strawberry.type
class HoldEdge:
    node: Hold
    cursor: str


@strawberry.type
class HoldConnection:
    edges: list[HoldEdge]
    page_info: PageInfo


async def team_holds(
    team_id: uuid.UUID, first: int | None, after: str | None, status: HoldStatus | None
) -> HoldConnection:
    """A page of the team's holds, newest first."""
    page = await holds.team_holds(team_id, first, after, status)
    now = clock.now()
    edges = [
        HoldEdge(node=Hold(model=h, read_at=now), cursor=c)
        for h, c in zip(page.holds, page.cursors, strict=True)
    ]
    return HoldConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None
        ),
    )
