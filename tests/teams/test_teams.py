"""Teams, members, roles and who may see and change what."""

from __future__ import annotations

import uuid

from tests.support.api import Actor, Api, join, sign_up

TEAM = "query($t: ID!) { team(id: $t) { id name viewerRole members { email role pending } } }"
ADD = """mutation($t: ID!, $e: String!, $r: Role!) {
  addTeamMember(input: {teamId: $t, email: $e, role: $r}) { member { email role pending } errors { code field message } } }"""
REMOVE = """mutation($t: ID!, $e: String!) {
  removeTeamMember(input: {teamId: $t, email: $e}) { errors { code field message } } }"""
SET_ROLE = """mutation($t: ID!, $e: String!, $r: Role!) {
  setTeamMemberRole(input: {teamId: $t, email: $e, role: $r}) { member { email role } errors { code field } } }"""
LIMIT = """mutation($t: ID!, $l: Decimal!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: $l}) {
  credits { invoicedSpendingLimit } errors { code field } } }"""


async def _team_with_member(api: Api) -> tuple[Actor, Actor]:
    admin = await sign_up(api, "admin@example.com")
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    return admin, member


async def test_create_team_makes_the_creator_admin(api: Api, admin: Actor) -> None:
    data = await api.ok(
        'mutation { createTeam(input: {name: "  Acme   Labs "}) { team { id name viewerRole } errors { code } } }',
        token=admin.token,
    )
    team = data["createTeam"]["team"]
    assert team["name"] == "Acme Labs"
    assert team["viewerRole"] == "ADMIN"
    for bad in ["", "   ", "x" * 201]:
        result = await api.ok(
            "mutation($n: String!) { createTeam(input: {name: $n}) { team { id } errors { code field } } }",
            {"n": bad},
            admin.token,
        )
        assert result["createTeam"] == {
            "team": None,
            "errors": [{"code": "INVALID_INPUT", "field": "name"}],
        }


async def test_member_reads_but_cannot_change(api: Api) -> None:
    admin, member = await _team_with_member(api)
    data = await api.ok(TEAM, {"t": admin.team_id}, member.token)
    assert data["team"]["viewerRole"] == "MEMBER"
    for query, variables in [
        (ADD, {"t": admin.team_id, "e": "x@example.com", "r": "MEMBER"}),
        (REMOVE, {"t": admin.team_id, "e": admin.email}),
        (SET_ROLE, {"t": admin.team_id, "e": member.email, "r": "ADMIN"}),
        (LIMIT, {"t": admin.team_id, "l": "0"}),
    ]:
        assert await api.error_code(query, variables, member.token) == "FORBIDDEN"


async def test_invisible_team_is_not_found_like_a_missing_one(api: Api) -> None:
    admin, _ = await _team_with_member(api)
    outsider = await sign_up(api, "outsider@example.com")
    for team_id in [admin.team_id, str(uuid.uuid4()), "not-an-id", "1", ""]:
        assert await api.error_code(TEAM, {"t": team_id}, outsider.token) == "NOT_FOUND"
        assert (
            await api.error_code(ADD, {"t": team_id, "e": "a@b.co", "r": "MEMBER"}, outsider.token)
            == "NOT_FOUND"
        )
    assert await api.error_code(TEAM, {"t": admin.team_id}) == "UNAUTHENTICATED"


async def test_operator_reads_any_team_but_changes_nothing(api: Api, operator: Actor) -> None:
    admin, _ = await _team_with_member(api)
    data = await api.ok(TEAM, {"t": admin.team_id}, operator.token)
    assert data["team"]["viewerRole"] is None
    assert (
        await api.error_code(LIMIT, {"t": admin.team_id, "l": "0"}, operator.token) == "FORBIDDEN"
    )


async def test_roles_and_removal_keep_one_admin(api: Api) -> None:
    admin, member = await _team_with_member(api)
    demote = await api.ok(
        SET_ROLE, {"t": admin.team_id, "e": admin.email, "r": "MEMBER"}, admin.token
    )
    assert demote["setTeamMemberRole"]["errors"] == [{"code": "INVALID_INPUT", "field": "role"}]
    remove = await api.ok(REMOVE, {"t": admin.team_id, "e": admin.email}, admin.token)
    assert remove["removeTeamMember"]["errors"][0]["code"] == "INVALID_INPUT"

    promote = await api.ok(
        SET_ROLE, {"t": admin.team_id, "e": member.email, "r": "ADMIN"}, admin.token
    )
    assert promote["setTeamMemberRole"]["member"] == {"email": member.email, "role": "ADMIN"}
    # Now two admins: the first may step down, and the second may remove them.
    await api.ok(SET_ROLE, {"t": admin.team_id, "e": admin.email, "r": "MEMBER"}, admin.token)
    gone = await api.ok(REMOVE, {"t": admin.team_id, "e": admin.email}, member.token)
    assert gone["removeTeamMember"]["errors"] == []
    assert await api.error_code(TEAM, {"t": admin.team_id}, admin.token) == "NOT_FOUND"


async def test_member_errors(api: Api) -> None:
    admin, member = await _team_with_member(api)
    again = await api.ok(ADD, {"t": admin.team_id, "e": member.email, "r": "MEMBER"}, admin.token)
    assert again["addTeamMember"]["errors"][0]["code"] == "INVALID_INPUT"
    for email in ["", "no-at-sign", "a@b", "a b@c.com", "x" * 400 + "@e.com"]:
        bad = await api.ok(ADD, {"t": admin.team_id, "e": email, "r": "MEMBER"}, admin.token)
        assert bad["addTeamMember"]["errors"][0] | {"message": ""} == {
            "code": "INVALID_INPUT",
            "field": "email",
            "message": "",
        }
    missing = await api.ok(REMOVE, {"t": admin.team_id, "e": "nobody@example.com"}, admin.token)
    assert missing["removeTeamMember"]["errors"][0]["code"] == "NOT_FOUND"


async def test_pending_invitation_can_be_changed_and_withdrawn(api: Api, admin: Actor) -> None:
    await api.ok(ADD, {"t": admin.team_id, "e": "later@example.com", "r": "MEMBER"}, admin.token)
    changed = await api.ok(
        SET_ROLE, {"t": admin.team_id, "e": "later@example.com", "r": "ADMIN"}, admin.token
    )
    assert changed["setTeamMemberRole"]["member"]["role"] == "ADMIN"
    await api.ok(REMOVE, {"t": admin.team_id, "e": "later@example.com"}, admin.token)
    data = await api.ok(TEAM, {"t": admin.team_id}, admin.token)
    assert [m["email"] for m in data["team"]["members"]] == [admin.email]
