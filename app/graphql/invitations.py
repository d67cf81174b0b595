"""The Invitation type and where it is listed: `Viewer.invitations`, `Team.invitations`."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.graphql.context import Info
from app.graphql.types import Role
from app.kit.errors import Forbidden
from app.teams import invitations
from app.teams.models import Team


@strawberry.type(description="An offer of membership; nobody joins a team without accepting.")
class Invitation:
    id: strawberry.ID
    team_id: strawberry.ID
    team_name: str
    email: str
    role: Role
    invited_by: str | None = strawberry.field(
        description="the inviting admin's email; null for invitations made before it was kept"
    )
    created_at: datetime

    @classmethod
    def of(cls, view: invitations.InvitationView) -> Invitation:
        return cls(
            id=strawberry.ID(str(view.id)),
            team_id=strawberry.ID(str(view.team_id)),
            team_name=view.team_name,
            email=view.email,
            role=view.role,
            invited_by=view.invited_by,
            created_at=view.created_at,
        )


async def viewer_invitations(info: Info) -> list[Invitation]:
    viewer = await info.context.viewer()
    return [Invitation.of(v) for v in await invitations.for_viewer(viewer)]


async def team_invitations(info: Info, team: Team, role: Role | None) -> list[Invitation]:
    """Admins (and operators, who have no role) see the team's open invitations."""
    viewer = await info.context.viewer()
    if role is not Role.ADMIN and not (role is None and viewer.is_operator):
        raise Forbidden()
    return [Invitation.of(v) for v in await invitations.for_team(team)]
