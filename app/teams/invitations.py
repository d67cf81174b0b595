"""Invitations and leaving: nobody becomes a member of a team without accepting.

An admin's `invite` only records an offer addressed to an email. The owner of that email
(the signed-in user whose token carries it) accepts or declines it; an admin may cancel
it; a member may leave (never the last admin). Each step locks the team's row, like
every membership change, and writes its audit event in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.events import outbox
from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.teams import service
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction
from app.teams.models import Invitation, Membership, Role, Team, User
from app.teams.service import Viewer, admin_count, clean_email, lock_team

# A team's open offers; more would only let one team flood inboxes.
MAX_PENDING_PER_TEAM = 100
# Newest first in `Viewer.invitations`: strangers' offers cannot grow one answer unbounded.
MAX_LISTED = 100


@dataclass(frozen=True, slots=True)
class InvitationView:
    id: int
    team_id: uuid.UUID
    team_name: str
    email: str
    role: Role
    invited_by: str | None
    created_at: datetime


INVITATION_EVENT = "invitation.created"  # email only: no webhook carries it


def _view(invitation: Invitation, team: Team) -> InvitationView:
    return InvitationView(
        id=invitation.id,
        team_id=team.id,
        team_name=team.name,
        email=invitation.email,
        role=invitation.role,
        invited_by=invitation.invited_by,
        created_at=invitation.created_at,
    )


def _audited(email: str, role: Role, *, pending: bool) -> dict[str, object]:
    return {"email": email, "role": role.value, "pending": pending}


def _not_found() -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, "No such invitation.", "invitationId")


def _parse_id(invitation_id: object) -> int:
    text = str(invitation_id).strip()
    if not text.isdigit() or len(text) > 18:
        raise _not_found()
    return int(text)


def _email_of(user: User) -> str:
    return user.email.strip().lower()


async def invite(
    team: Team, email: str, role: Role, *, invited_by: str, actor: str = audit.SYSTEM
) -> InvitationView:
    """Offers `role` in the team to `email`; the owner of the email decides."""
    cleaned = clean_email(email)
    async with atomic() as tx:
        await lock_team(team)
        if await Membership.exists(team_id=team.id, user__email=cleaned):
            raise DomainError(ErrorCode.INVALID_INPUT, "Already a member.", "email")
        if await Invitation.exists(team_id=team.id, email=cleaned):
            raise DomainError(ErrorCode.INVALID_INPUT, "Already invited.", "email")
        if await Invitation.filter(team_id=team.id).count() >= MAX_PENDING_PER_TEAM:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"A team has at most {MAX_PENDING_PER_TEAM} open invitations.",
                "email",
            )
        invitation = await Invitation.create(
            team=team,
            email=cleaned,
            role=role,
            invited_by=invited_by[:400],
            created_at=clock.now(),
        )
        new = _audited(cleaned, role, pending=True)
        await audit.record(tx.conn, team.id, actor, AuditAction.MEMBER_ADDED, None, new)
        # The invitation email, sent from the outbox once this commits.
        data = {
            "teamId": str(team.id),
            "teamName": team.name,
            "invitationId": str(invitation.id),
            "email": cleaned,
            "role": role.value,
            "invitedBy": invitation.invited_by,
        }
        await outbox.emit(tx, INVITATION_EVENT, data, team_id=team.id)
        return _view(invitation, team)


async def for_viewer(viewer: Viewer) -> list[InvitationView]:
    """The offers addressed to the viewer's email, newest first."""
    rows = (
        await Invitation.filter(email=_email_of(viewer.user))
        .prefetch_related("team")
        .order_by("-created_at", "-id")
        .limit(MAX_LISTED)
    )
    return [_view(row, row.team) for row in rows]


async def for_team(team: Team) -> list[InvitationView]:
    """The team's open offers, oldest first (callers check that the viewer is an admin)."""
    rows = await Invitation.filter(team_id=team.id).order_by("created_at", "id")
    return [_view(row, team) for row in rows]


async def _addressed_to(
    viewer: Viewer, invitation_id: object, team_id: uuid.UUID | None = None
) -> Invitation:
    """The offer to the viewer's email. Found first by (email, id): the viewer knows the
    offer, not its team (an index on email serves it; on Citus it asks every shard, once
    per answer to an invitation); read again under the team's lock by its whole key."""
    query = Invitation.filter(id=_parse_id(invitation_id), email=_email_of(viewer.user))
    if team_id is not None:
        query = query.filter(team_id=team_id)
    found = await query.first()
    if found is None:
        # Someone else's offer answers exactly like one that does not exist.
        raise _not_found()
    return found


async def accept(viewer: Viewer, invitation_id: object) -> tuple[Team, Role]:
    """Makes the viewer a member with the offered role; the offer is used up."""
    offer = await _addressed_to(viewer, invitation_id)
    team = await Team.get(id=offer.team_id)
    async with atomic() as tx:
        await lock_team(team)
        # Read again under the lock: it may have been canceled meanwhile.
        invitation = await _addressed_to(viewer, offer.id, team.id)
        user = viewer.user
        existing = await Membership.get_or_none(team_id=team.id, user_id=user.id)
        if existing is not None:
            await invitation.delete()
            return team, existing.role
        cap = service.MAX_TEAMS_PER_USER
        if await Membership.filter(user_id=user.id).count() >= cap:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"You belong to {cap} teams: leave one first.",
                "invitationId",
            )
        await Membership.create(team=team, user=user, role=invitation.role, created_at=clock.now())
        await invitation.delete()
        await audit.record(
            tx.conn,
            team.id,
            audit.actor_name(user.email),
            AuditAction.INVITATION_ACCEPTED,
            _audited(invitation.email, invitation.role, pending=True),
            _audited(user.email, invitation.role, pending=False),
        )
        return team, invitation.role


async def decline(viewer: Viewer, invitation_id: object) -> None:
    """Drops an offer addressed to the viewer; the team's admins see it in the trail."""
    offer = await _addressed_to(viewer, invitation_id)
    team = await Team.get(id=offer.team_id)
    async with atomic() as tx:
        await lock_team(team)
        invitation = await _addressed_to(viewer, offer.id, team.id)
        await invitation.delete()
        old = _audited(invitation.email, invitation.role, pending=True)
        actor = audit.actor_name(viewer.user.email)
        await audit.record(tx.conn, team.id, actor, AuditAction.INVITATION_DECLINED, old, None)


async def cancel(team: Team, invitation_id: object, *, actor: str = audit.SYSTEM) -> None:
    """Withdraws one of the team's offers (callers check that the viewer is an admin)."""
    parsed = _parse_id(invitation_id)
    async with atomic() as tx:
        await lock_team(team)
        invitation = await Invitation.get_or_none(id=parsed, team_id=team.id)
        if invitation is None:
            raise _not_found()
        await invitation.delete()
        old = _audited(invitation.email, invitation.role, pending=True)
        await audit.record(tx.conn, team.id, actor, AuditAction.INVITATION_CANCELED, old, None)


async def leave(viewer: Viewer, team: Team) -> None:
    """Ends the viewer's membership; the last admin must hand over first."""
    async with atomic() as tx:
        await lock_team(team)
        membership = await Membership.get_or_none(team_id=team.id, user_id=viewer.user.id)
        if membership is None:
            raise DomainError(ErrorCode.NOT_FOUND, "You are not a member of this team.", "teamId")
        if membership.role is Role.ADMIN and await admin_count(team) <= 1:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "You are the team's last admin: make someone else admin first.",
                "teamId",
            )
        await membership.delete()
        user = viewer.user
        old = _audited(user.email, membership.role, pending=False)
        actor = audit.actor_name(user.email)
        await audit.record(tx.conn, team.id, actor, AuditAction.MEMBER_LEFT, old, None)
        # After commit: the member's open streams and links end now.
        tx.members_changed(team.id)
