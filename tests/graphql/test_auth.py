"""Bearer tokens, first sign-in and the top-level error codes."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import jwt

from app.teams import tokens
from tests.support import ROOT
from tests.support.api import JWT_SECRET, Api, make_token, sign_up

VIEWER = "{ viewer { id email name isOperator memberships { role team { id name } } } }"


async def test_missing_malformed_expired_and_wrongly_signed_tokens(api: Api) -> None:
    expired = tokens.mint(
        JWT_SECRET, subject="x", email="x@example.com", ttl=timedelta(seconds=-60)
    )
    wrong_key = tokens.mint(
        "another-secret-of-sufficient-length-000000", subject="x", email="x@e.com"
    )
    no_email = jwt.encode({"sub": "x", "exp": 9999999999}, JWT_SECRET, algorithm="HS256")
    none_alg = jwt.encode(
        {"sub": "x", "email": "x@e.com", "exp": 9999999999}, None, algorithm="none"
    )
    for token in [None, "garbage", expired, wrong_key, no_email, none_alg]:
        assert await api.error_code(VIEWER, token=token) == "UNAUTHENTICATED", token
    response = await api.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": "Basic abc"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_first_sight_creates_user_and_personal_admin_team(api: Api) -> None:
    token = make_token("New.Person@Example.com", name="New Person")
    first = await api.ok(VIEWER, token=token)
    again = await api.ok(VIEWER, token=token)
    assert first == again
    viewer = first["viewer"]
    assert viewer["email"] == "new.person@example.com"
    assert viewer["name"] == "New Person"
    assert viewer["isOperator"] is False
    [membership] = viewer["memberships"]
    assert membership["role"] == "ADMIN"
    assert membership["team"]["name"] == "New Person's team"


async def test_operator_claim(api: Api) -> None:
    data = await api.ok(VIEWER, token=make_token("ops@example.com", operator=True))
    assert data["viewer"]["isOperator"] is True


async def test_signing_in_does_not_join_the_teams_that_invited_you(api: Api) -> None:
    """An invitation waits for consent: the first sign-in shows it, accepting joins."""
    admin = await sign_up(api, "boss@example.com")
    added = await api.ok(
        """mutation($t: ID!) { addTeamMember(input: {teamId: $t, email: "Later@Example.com"}) {
             member { email role pending } invitation { id email teamName invitedBy }
             errors { code } } }""",
        {"t": admin.team_id},
        token=admin.token,
    )
    assert added["addTeamMember"]["member"] == {
        "email": "later@example.com",
        "role": "MEMBER",
        "pending": True,
    }
    invitation = added["addTeamMember"]["invitation"]
    later = await api.ok(
        "{ viewer { memberships { team { id } role } invitations { id teamId invitedBy } } }",
        token=make_token("later@example.com"),
    )
    assert [m["team"]["id"] for m in later["viewer"]["memberships"]] != [admin.team_id]
    assert len(later["viewer"]["memberships"]) == 1  # their own personal team only
    assert later["viewer"]["invitations"] == [
        {"id": invitation["id"], "teamId": admin.team_id, "invitedBy": "boss@example.com"}
    ]
    members = await api.ok(
        "query($t: ID!) { team(id: $t) { members { email pending role } } }",
        {"t": admin.team_id},
        token=admin.token,
    )
    assert {"email": "later@example.com", "pending": True, "role": "MEMBER"} in members["team"][
        "members"
    ]


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_token_command_prints_a_valid_token(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "token", "--email", "Cli@Example.com", "--operator"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"AUTH_JWT_SECRET": JWT_SECRET, "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    claims = tokens.verify(JWT_SECRET, out)
    assert claims.email == "cli@example.com"
    assert claims.operator is True
