"""The GraphQL API as a client sees it: signed tokens, a small client, signed-up users."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from app.teams import tokens

JWT_SECRET = "test-secret-not-for-production-use-0123456789"


def make_token(email: str, *, operator: bool = False, name: str | None = None) -> str:
    return tokens.mint(
        JWT_SECRET, subject=f"sub:{email}", email=email, name=name, operator=operator
    )


class Api:
    """A GraphQL client as the console or the metering gateway would use it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The data of a request that must not fail at the top level."""
        body = await self.raw(query, variables, token)
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    async def error_code(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> str:
        body = await self.raw(query, variables, token)
        assert body.get("errors"), body
        code: str = body["errors"][0]["extensions"]["code"]
        return code


class Actor:
    """A signed-in user with their personal team."""

    def __init__(self, email: str, token: str, team_id: str) -> None:
        self.email = email
        self.token = token
        self.team_id = team_id


async def sign_up(api: Api, email: str | None = None, *, operator: bool = False) -> Actor:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    token = make_token(email, operator=operator)
    data = await api.ok("{ viewer { memberships { team { id } role } } }", token=token)
    team_id = data["viewer"]["memberships"][0]["team"]["id"]
    return Actor(email, token, team_id)


INVITE = """mutation($t: ID!, $e: String!, $r: Role!) {
  addTeamMember(input: {teamId: $t, email: $e, role: $r}) {
    member { email role pending } invitation { id teamId email role invitedBy }
    errors { code field message } } }"""
ACCEPT = """mutation($i: ID!) { acceptInvitation(input: {invitationId: $i}) {
  membership { role team { id name } } errors { code field message } } }"""


async def invite(api: Api, admin: Actor, team_id: str, email: str, role: str = "MEMBER") -> str:
    """addTeamMember by `admin`; the invitation's id."""
    data = await api.ok(INVITE, {"t": team_id, "e": email, "r": role}, admin.token)
    payload = data["addTeamMember"]
    assert payload["errors"] == [], payload
    invitation_id: str = payload["invitation"]["id"]
    return invitation_id


async def join(
    api: Api, admin: Actor, member: Actor, team_id: str | None = None, role: str = "MEMBER"
) -> None:
    """`admin` invites `member` to `team_id` (default: the admin's team); `member` accepts."""
    invitation_id = await invite(api, admin, team_id or admin.team_id, member.email, role)
    data = await api.ok(ACCEPT, {"i": invitation_id}, member.token)
    assert data["acceptInvitation"]["errors"] == [], data
