"""The audit trail in GraphQL: `Team.auditLog` for admins (and operators)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.billing import callers
from app.graphql.context import Info
from app.graphql.types import PageInfo, Role
from app.kit.errors import Forbidden
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction as DomainAuditAction
from app.teams.audit.models import AuditEvent

strawberry.enum(DomainAuditAction, name="AuditAction")
AuditAction = DomainAuditAction


async def actor(info: Info) -> str:
    """The caller as the audit trail names them: a person, or the API key that acted."""
    return callers.actor_name(await info.context.caller())


@strawberry.type
class AuditLogEntry:
    id: strawberry.ID
    action: AuditAction
    actor: str = strawberry.field(
        description='who: an email ("(operator)" for platform staff), or "system"'
    )
    old_value: JSON | None = strawberry.field(description="null when there was nothing before")
    new_value: JSON | None = strawberry.field(description="null when there is nothing after")
    created_at: datetime

    @classmethod
    def of(cls, event: AuditEvent) -> AuditLogEntry:
        return cls(
            id=strawberry.ID(str(event.id)),
            action=event.action,
            actor=event.actor,
            old_value=event.old,
            new_value=event.new,
            created_at=event.created_at,
        )


@strawberry.type
class AuditLogEdge:
    node: AuditLogEntry
    cursor: str


@strawberry.type
class AuditLogConnection:
    edges: list[AuditLogEdge]
    page_info: PageInfo


async def team_audit_log(
    info: Info, team_id: uuid.UUID, viewer_role: Role | None, first: int | None, after: str | None
) -> AuditLogConnection:
    """The team's admins and operators only; members get FORBIDDEN."""
    if viewer_role is not Role.ADMIN and not (await info.context.viewer()).is_operator:
        raise Forbidden()
    page = await audit.events(team_id, first, after)
    return AuditLogConnection(
        edges=[AuditLogEdge(node=AuditLogEntry.of(e), cursor=audit.cursor(e)) for e in page.events],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )
