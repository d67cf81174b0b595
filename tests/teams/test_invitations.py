"""Membership only by consent: invitations accepted, declined, canceled; leaving a team."""

from __future__ import annotations

import pytest

from app.teams import service as teams_service
from app.teams.audit.models import AuditEvent
from app.teams.models import Invitation, Membership
from tests.support.api import ACCEPT, Actor, Api, invite, join, sign_up

VIEWER = """{ viewer { memberships { role team { id name } }
  invitations { id teamId teamName email role invitedBy createdAt } } }"""
TEAM_INVITATIONS = """query($t: ID!) { team(id: $t) { invitations { id email role invitedBy } } }"""
DECLINE = """mutation($i: ID!) { declineInvitation(input: {invitationId: $i}) {
  errors { code field } } }"""
CANCEL = """mutation($t: ID!, $i: ID!) { cancelInvitation(input: {teamId: $t, invitationId: $i}) {
  errors { code field } } }"""
LEAVE = """mutation($t: ID!) { leaveTeam(input: {teamId: $t}) { errors { code field message } } }"""
CREATE = (
    """mutation($n: String!) { createTeam(input: {name: $n}) { team { id } errors { code } } }"""
)
SET_ROLE = """mutation($t: ID!, $e: String!) {
  setTeamMemberRole(input: {teamId: $t, email: $e, role: ADMIN}) { errors { code } } }"""


async def _team_ids(api: Api, actor: Actor) -> set[str]:
    data = await api.ok(VIEWER, token=actor.token)
    return {m["team"]["id"] for m in data["viewer"]["memberships"]}


async def test_an_invitation_is_only_an_offer_until_accepted(api: Api, admin: Actor) -> None:
    bob = await sign_up(api, "bob@example.com")
    invitation_id = await invite(api, admin, admin.team_id, "Bob@Example.com", "ADMIN")
    assert admin.team_id not in await _team_ids(api, bob)
    seen = (await api.ok(VIEWER, token=bob.token))["viewer"]["invitations"]
    assert [(i["id"], i["teamId"], i["email"], i["role"], i["invitedBy"]) for i in seen] == [
        (invitation_id, admin.team_id, "bob@example.com", "ADMIN", admin.email)
    ]
    assert seen[0]["teamName"] == "admin's team"
    listed = await api.ok(TEAM_INVITATIONS, {"t": admin.team_id}, admin.token)
    assert [i["id"] for i in listed["team"]["invitations"]] == [invitation_id]

    accepted = await api.ok(ACCEPT, {"i": invitation_id}, bob.token)
    assert accepted["acceptInvitation"]["errors"] == []
    assert accepted["acceptInvitation"]["membership"]["role"] == "ADMIN"
    assert accepted["acceptInvitation"]["membership"]["team"]["id"] == admin.team_id
    assert admin.team_id in await _team_ids(api, bob)
    assert (await api.ok(VIEWER, token=bob.token))["viewer"]["invitations"] == []
    # Used up: accepting again is like accepting nothing.
    again = await api.ok(ACCEPT, {"i": invitation_id}, bob.token)
    assert again["acceptInvitation"]["errors"] == [
        {"code": "NOT_FOUND", "field": "invitationId", "message": "No such invitation."}
    ]


async def test_nobody_else_can_use_or_see_someone_elses_invitation(
    api: Api, admin: Actor, operator: Actor
) -> None:
    invitation_id = await invite(api, admin, admin.team_id, "bob@example.com")
    mallory = await sign_up(api, "mallory@example.com")
    for mutation in (ACCEPT, DECLINE):
        data = await api.ok(mutation, {"i": invitation_id}, mallory.token)
        assert next(iter(data.values()))["errors"][0]["code"] == "NOT_FOUND"
    for bad in ("nope", "-1", "99999999999999999999", ""):
        data = await api.ok(ACCEPT, {"i": bad}, mallory.token)
        assert data["acceptInvitation"]["errors"][0]["code"] == "NOT_FOUND"
    assert await Membership.filter(team_id=admin.team_id).count() == 1
    assert await Invitation.filter(id=int(invitation_id)).exists()
    # The team's list is for its admins (and operators), not members or strangers.
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    assert await api.error_code(TEAM_INVITATIONS, {"t": admin.team_id}, member.token) == "FORBIDDEN"
    code = await api.error_code(TEAM_INVITATIONS, {"t": admin.team_id}, mallory.token)
    assert code == "NOT_FOUND"
    seen = await api.ok(TEAM_INVITATIONS, {"t": admin.team_id}, operator.token)
    assert len(seen["team"]["invitations"]) == 1
    # Another team's admin cannot cancel it through their own team.
    data = await api.ok(CANCEL, {"t": mallory.team_id, "i": invitation_id}, mallory.token)
    assert data["cancelInvitation"]["errors"] == [{"code": "NOT_FOUND", "field": "invitationId"}]
    assert await Invitation.filter(id=int(invitation_id)).exists()


async def test_decline_and_cancel_end_an_invitation_and_are_audited(api: Api, admin: Actor) -> None:
    bob = await sign_up(api, "bob@example.com")
    declined = await invite(api, admin, admin.team_id, bob.email)
    data = await api.ok(DECLINE, {"i": declined}, bob.token)
    assert data["declineInvitation"]["errors"] == []
    canceled = await invite(api, admin, admin.team_id, bob.email)
    data = await api.ok(CANCEL, {"t": admin.team_id, "i": canceled}, admin.token)
    assert data["cancelInvitation"]["errors"] == []
    late = await api.ok(ACCEPT, {"i": canceled}, bob.token)
    assert late["acceptInvitation"]["errors"][0]["code"] == "NOT_FOUND"
    assert admin.team_id not in await _team_ids(api, bob)
    assert await Invitation.all().count() == 0
    events = await AuditEvent.filter(team_id=admin.team_id).order_by("id")
    assert [(e.action.value, e.actor) for e in events] == [
        ("MEMBER_ADDED", "admin@example.com"),
        ("INVITATION_DECLINED", "bob@example.com"),
        ("MEMBER_ADDED", "admin@example.com"),
        ("INVITATION_CANCELED", "admin@example.com"),
    ]


async def test_members_leave_but_the_last_admin_stays(api: Api, admin: Actor) -> None:
    bob = await sign_up(api, "bob@example.com")
    await join(api, admin, bob)
    refused = await api.ok(LEAVE, {"t": admin.team_id}, admin.token)
    assert refused["leaveTeam"]["errors"][0]["code"] == "INVALID_INPUT"
    assert admin.team_id in await _team_ids(api, admin)
    left = await api.ok(LEAVE, {"t": admin.team_id}, bob.token)
    assert left["leaveTeam"]["errors"] == []
    assert admin.team_id not in await _team_ids(api, bob)
    assert await api.error_code(LEAVE, {"t": admin.team_id}, bob.token) == "NOT_FOUND"
    # With a second admin, the first may leave.
    carol = await sign_up(api, "carol@example.com")
    await join(api, admin, carol, role="ADMIN")
    assert (await api.ok(LEAVE, {"t": admin.team_id}, admin.token))["leaveTeam"]["errors"] == []
    last = await AuditEvent.filter(team_id=admin.team_id).order_by("-id").first()
    assert last is not None
    assert (last.action.value, last.actor, last.old) == (
        "MEMBER_LEFT",
        "admin@example.com",
        {"email": "admin@example.com", "role": "ADMIN", "pending": False},
    )


async def test_strangers_look_alike_teams_do_not_block_the_user(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two strangers each make teams and invite the victim to all of them: the victim
    still creates teams of their own, and can leave one they joined by mistake."""
    monkeypatch.setattr(teams_service, "MAX_TEAMS_PER_USER", 3)
    victim = await sign_up(api, "victim@example.com")
    strangers = [await sign_up(api, f"stranger{i}@example.com") for i in range(2)]
    offers: list[str] = []
    for stranger in strangers:
        for _ in range(2):
            created = await api.ok(CREATE, {"n": "victim's team"}, stranger.token)
            team_id = created["createTeam"]["team"]["id"]
            offers.append(await invite(api, stranger, team_id, victim.email, "ADMIN"))
    assert await _team_ids(api, victim) == {victim.team_id}
    made = await api.ok(CREATE, {"n": "my real team"}, victim.token)
    assert made["createTeam"]["errors"] == []
    # Fooled once: accepted a look-alike; leaving it is the victim's own choice to undo.
    accepted = await api.ok(ACCEPT, {"i": offers[0]}, victim.token)
    fake = accepted["acceptInvitation"]["membership"]["team"]["id"]
    assert (await api.ok(LEAVE, {"t": fake}, victim.token))["leaveTeam"]["errors"] == []
    assert fake not in await _team_ids(api, victim)
    made = await api.ok(CREATE, {"n": "another real team"}, victim.token)
    assert made["createTeam"]["errors"] == []
    # At the cap now (3 teams): accepting more is refused, never forced.
    refused = await api.ok(ACCEPT, {"i": offers[1]}, victim.token)
    assert refused["acceptInvitation"]["errors"][0]["code"] == "INVALID_INPUT"
    assert len(await _team_ids(api, victim)) == 3
