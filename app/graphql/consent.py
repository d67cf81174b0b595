"""Joining and leaving teams by consent: accept, decline, cancel an invitation; leave.

`InvitationsMutation` is merged into Mutation; `addTeamMember` (app/graphql/mutations.py)
makes the invitations these answer.
"""

from __future__ import annotations

import strawberry

from app.graphql.audit import actor as audit_actor
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.payloads import payload_errors
from app.graphql.team import Membership, Team
from app.teams import invitations
from app.teams import service as teams


@strawberry.input
class AcceptInvitationInput:
    invitation_id: strawberry.ID


@strawberry.type
class AcceptInvitationPayload:
    membership: Membership | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class DeclineInvitationInput:
    invitation_id: strawberry.ID


@strawberry.type
class DeclineInvitationPayload:
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CancelInvitationInput:
    team_id: strawberry.ID
    invitation_id: strawberry.ID


@strawberry.type
class CancelInvitationPayload:
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class LeaveTeamInput:
    team_id: strawberry.ID


@strawberry.type
class LeaveTeamPayload:
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class InvitationsMutation:
    @strawberry.mutation(description="Join the team of an invitation to your email.")
    @payload_errors(AcceptInvitationPayload)
    async def accept_invitation(
        self, info: Info, input: AcceptInvitationInput
    ) -> AcceptInvitationPayload:
        viewer = await info.context.viewer()
        team, role = await invitations.accept(viewer, input.invitation_id)
        return AcceptInvitationPayload(
            membership=Membership(team=Team(model=team, viewer_role=role), role=role)
        )

    @strawberry.mutation(description="Refuse an invitation to your email.")
    @payload_errors(DeclineInvitationPayload)
    async def decline_invitation(
        self, info: Info, input: DeclineInvitationInput
    ) -> DeclineInvitationPayload:
        await invitations.decline(await info.context.viewer(), input.invitation_id)
        return DeclineInvitationPayload()

    @strawberry.mutation(description="Admin: withdraw one of the team's invitations.")
    @payload_errors(CancelInvitationPayload)
    async def cancel_invitation(
        self, info: Info, input: CancelInvitationInput
    ) -> CancelInvitationPayload:
        access = await teams.team_access(await info.context.viewer(), input.team_id, admin=True)
        await invitations.cancel(access.team, input.invitation_id, actor=await audit_actor(info))
        return CancelInvitationPayload()

    @strawberry.mutation(description="Stop being a member; refused for the team's last admin.")
    @payload_errors(LeaveTeamPayload)
    async def leave_team(self, info: Info, input: LeaveTeamInput) -> LeaveTeamPayload:
        viewer = await info.context.viewer()
        access = await teams.team_access(viewer, input.team_id)
        await invitations.leave(viewer, access.team)
        return LeaveTeamPayload()
