"""Sign-in, teams, members and roles."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tortoise import connections
from tortoise.exceptions import IntegrityError

from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, Forbidden, NotFound
from app.kit.ids import parse_uuid
from app.kit.sql import fetch_one
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction
from app.teams.keyring import TeamKeyCaller
from app.teams.models import Invitation, Membership, Role, Team, User
from app.teams.tokens import Claims

# Opens what a new team needs beyond its members (its credit account), inside the
# transaction that creates it: passed in by the caller, who knows the higher layers.
TeamOpener = Callable[[Team], Awaitable[None]]

MAX_TEAM_NAME = 200
MAX_TEAMS_PER_USER = 100


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user of one request."""

    user: User
    is_operator: bool


# Who may ask for a team: a signed-in user, or a team API key (its own team only).
TeamCaller = Viewer | TeamKeyCaller


@dataclass(frozen=True, slots=True)
class TeamAccess:
    """A team the caller may see, and the caller's role in it (None for an operator)."""

    team: Team
    role: Role | None
    # The team API key acting, if a key rather than a person asks.
    key: TeamKeyCaller | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class MemberView:
    email: str
    name: str | None
    role: Role
    pending: bool


async def sign_in(claims: Claims, *, open_team: TeamOpener) -> Viewer:
    """The user behind `claims`; created with a personal team on first sight."""
    user = await User.get_or_none(subject=claims.subject)
    if user is None:
        user = await _first_sign_in(claims, open_team)
    elif user.email != claims.email or (claims.name and user.name != claims.name):
        user.email = claims.email
        user.name = claims.name or user.name
        await user.save(update_fields=["email", "name"])
    if user.is_operator != claims.operator:
        user.is_operator = claims.operator
        await user.save(update_fields=["is_operator"])
    return Viewer(user=user, is_operator=claims.operator)


async def _first_sign_in(claims: Claims, open_team: TeamOpener) -> User:
    now = clock.now()
    try:
        async with atomic():
            user = await User.create(
                id=uuid.uuid4(),
                subject=claims.subject,
                email=claims.email,
                name=claims.name,
                is_operator=claims.operator,
                created_at=now,
            )
            label = claims.name or claims.email.split("@", 1)[0]
            await _create_team(user, f"{label}'s team"[:MAX_TEAM_NAME], open_team)
    except IntegrityError:
        # Two first requests raced; the other one created the user.
        return await User.get(subject=claims.subject)
    # Invitations to the user's email stay offers: `invitations.accept` decides.
    return user


async def _create_team(user: User, name: str, open_team: TeamOpener) -> Team:
    now = clock.now()
    team = await Team.create(id=uuid.uuid4(), name=name, created_at=now)
    await Membership.create(team=team, user=user, role=Role.ADMIN, created_at=now)
    await open_team(team)
    return team


async def lock_team(team: Team) -> None:
    """The team's row is the lock of its membership changes: two removals cannot both
    pass the last-admin check. NO KEY: rows that refer to the team insert meanwhile."""
    await Team.select_for_update(no_key=True).get(id=team.id)


def _clean_team_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise DomainError(ErrorCode.INVALID_INPUT, "Team name must not be empty.", "name")
    if len(cleaned) > MAX_TEAM_NAME:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"Team name takes at most {MAX_TEAM_NAME} characters.", "name"
        )
    return cleaned


async def create_team(viewer: Viewer, name: str, *, open_team: TeamOpener) -> Team:
    cleaned = _clean_team_name(name)
    if await Membership.filter(user_id=viewer.user.id).count() >= MAX_TEAMS_PER_USER:
        raise DomainError(ErrorCode.INVALID_INPUT, "Too many teams.", "name")
    async with atomic():
        return await _create_team(viewer.user, cleaned, open_team)


async def team_access(caller: TeamCaller, team_id: object, *, admin: bool = False) -> TeamAccess:
    """The team if the caller may see it; NotFound otherwise, Forbidden if not admin enough.

    A team key reaches its own team only, with the role its scopes give it; any other
    team answers NotFound, exactly like a team that does not exist."""
    parsed = parse_uuid(team_id)
    if parsed is None:
        raise NotFound()
    if isinstance(caller, TeamKeyCaller):
        return await _key_access(caller, parsed, admin=admin)
    viewer = caller
    # One round trip on every request that names a team: the team and the viewer's role.
    row = await fetch_one(
        connections.get("default"),
        "SELECT t.id, t.name, t.created_at, m.role FROM teams t "
        "LEFT JOIN memberships m ON m.team_id = t.id AND m.user_id = $2 WHERE t.id = $1",
        [parsed, viewer.user.id],
    )
    role_name = row.pop("role") if row is not None else None
    if row is None or (role_name is None and not viewer.is_operator):
        raise NotFound()
    role = Role(role_name) if role_name is not None else None
    access = TeamAccess(team=Team._init_from_db(**row), role=role)
    if admin and not access.is_admin:
        raise Forbidden()
    return access


async def _key_access(key: TeamKeyCaller, team_id: uuid.UUID, *, admin: bool) -> TeamAccess:
    team = await Team.get_or_none(id=team_id) if team_id == key.team_id else None
    if team is None:
        raise NotFound()
    if admin and key.role is not Role.ADMIN:
        raise Forbidden()
    return TeamAccess(team=team, role=key.role, key=key)


async def require_team(team_id: object) -> Team:
    """The team, for operators' mutations (any team); NotFound when it does not exist."""
    parsed = parse_uuid(team_id)
    team = await Team.get_or_none(id=parsed) if parsed else None
    if team is None:
        raise NotFound()
    return team


async def memberships(viewer: Viewer) -> list[tuple[Team, Role]]:
    rows = (
        await Membership.filter(user_id=viewer.user.id)
        .prefetch_related("team")
        .order_by("created_at")
    )
    return [(row.team, row.role) for row in rows]


async def members(team: Team) -> list[MemberView]:
    rows = await Membership.filter(team_id=team.id).prefetch_related("user").order_by("created_at")
    invitations = await Invitation.filter(team_id=team.id).order_by("created_at")
    active = [MemberView(m.user.email, m.user.name, m.role, False) for m in rows]
    pending = [MemberView(i.email, None, i.role, True) for i in invitations]
    return active + pending


def clean_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or len(cleaned) > 320 or any(c.isspace() for c in cleaned):
        raise DomainError(ErrorCode.INVALID_INPUT, "Enter a valid email address.", "email")
    return cleaned


async def _find_member(team: Team, email: str) -> Membership | Invitation:
    cleaned = email.strip().lower()
    membership = (
        await Membership.filter(team_id=team.id, user__email=cleaned)
        .prefetch_related("user")
        .first()
    )
    if membership is not None:
        return membership
    invitation = await Invitation.get_or_none(team_id=team.id, email=cleaned)
    if invitation is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such member.", "email")
    return invitation


def _member_view(found: Membership | Invitation, role: Role | None = None) -> MemberView:
    if isinstance(found, Membership):
        return MemberView(found.user.email, found.user.name, role or found.role, False)
    return MemberView(found.email, None, role or found.role, True)


def _audited(member: MemberView) -> dict[str, object]:
    return {"email": member.email, "role": member.role.value, "pending": member.pending}


async def admin_count(team: Team) -> int:
    return await Membership.filter(team_id=team.id, role=Role.ADMIN).count()


async def remove_member(team: Team, email: str, *, actor: str = audit.SYSTEM) -> None:
    async with atomic() as tx:
        conn = tx.conn
        await lock_team(team)
        found = await _find_member(team, email)
        is_admin = isinstance(found, Membership) and found.role is Role.ADMIN
        if is_admin and await admin_count(team) <= 1:
            raise DomainError(ErrorCode.INVALID_INPUT, "A team keeps at least one admin.", "email")
        await found.delete()
        old = _audited(_member_view(found))
        await audit.record(conn, team.id, actor, AuditAction.MEMBER_REMOVED, old, None)
        if isinstance(found, Membership):
            # After commit: the removed member's open balance subscriptions end now.
            tx.members_changed(team.id)


async def set_member_role(
    team: Team, email: str, role: Role, *, actor: str = audit.SYSTEM
) -> MemberView:
    async with atomic() as tx:
        conn = tx.conn
        await lock_team(team)
        found = await _find_member(team, email)
        if found.role is not role:
            old, new = _audited(_member_view(found)), _audited(_member_view(found, role))
            await audit.record(conn, team.id, actor, AuditAction.MEMBER_ROLE_CHANGED, old, new)
        if isinstance(found, Membership):
            if found.role is Role.ADMIN and role is not Role.ADMIN and await admin_count(team) <= 1:
                raise DomainError(
                    ErrorCode.INVALID_INPUT, "A team keeps at least one admin.", "role"
                )
            found.role = role
            await found.save(update_fields=["role"])
            return MemberView(found.user.email, found.user.name, role, False)
        found.role = role
        await found.save(update_fields=["role"])
        return MemberView(found.email, None, role, True)
