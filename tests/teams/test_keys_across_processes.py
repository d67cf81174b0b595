"""API keys across real `python -m app serve` processes sharing the test database and the
Redis on 127.0.0.1:6379: a key revoked on one process (or by `creditline keys revoke`) is
refused by the other at once, though that one trusts its cache for 5 minutes; last uses
are written when a process shuts down.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from app.config import Settings
from app.teams.key_models import TeamApiKey
from tests.support import ROOT
from tests.support.api import JWT_SECRET, Api, sign_up
from tests.support.keys import REVOKE_TEAM_KEY, team_key
from tests.support.subscriptions import REDIS_URL, ServerProcess, http_api

# Far longer than any test: only the broker's message can end a key this fast.
CACHE = {"API_KEY_CACHE_SECONDS": "300"}
USAGE = """mutation($t: ID!, $k: String!) {
  recordUsage(input: {teamId: $t, amount: "0.01", idempotencyKey: $k}) { errors { code } } }"""
TEAM = "query($t: ID!) { team(id: $t) { id } }"


@pytest.fixture(scope="module")
async def pair(database: Settings) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert await client.ping()  # the cross-process case fails without Redis, never skips
    finally:
        await client.aclose()
    first = ServerProcess(database.database_url, REDIS_URL, extra_env=CACHE)
    second = ServerProcess(database.database_url, REDIS_URL, extra_env=CACHE)
    try:
        await asyncio.gather(first.wait_ready(), second.wait_ready())
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture
async def apis(pair: tuple[ServerProcess, ServerProcess]) -> AsyncIterator[tuple[Api, Api]]:
    first, second = http_api(pair[0].http_url), http_api(pair[1].http_url)
    yield first, second
    await first.http.aclose()
    await second.http.aclose()


async def _refused_within(api: Api, query: str, variables: dict[str, str], token: str) -> float:
    """Seconds until `token` is refused (UNAUTHENTICATED); fails after 5 s."""
    started = time.monotonic()
    while True:
        body = await api.raw(query, variables, token)
        errors = body.get("errors") or []
        if errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED":
            return time.monotonic() - started
        assert time.monotonic() - started < 5, body
        await asyncio.sleep(0.05)


def _creditline(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": REDIS_URL,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "ENVIRONMENT": "test",
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_team_key_revoked_on_one_process_is_refused_by_the_other(
    apis: tuple[Api, Api],
) -> None:
    api_first, api_second = apis
    owner = await sign_up(api_first, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    key, secret = await team_key(api_first, owner.token, owner.team_id, ["BILLING_READ"])
    # The second process verifies the key once and caches it.
    for _ in range(3):
        data = await api_second.ok(TEAM, {"t": owner.team_id}, secret)
        assert data["team"]["id"] == owner.team_id

    revoked = await api_first.ok(
        REVOKE_TEAM_KEY, {"t": owner.team_id, "id": key["id"]}, owner.token
    )
    assert revoked["revokeTeamApiKey"]["errors"] == []
    assert await _refused_within(api_second, TEAM, {"t": owner.team_id}, secret) < 5


async def test_the_command_line_makes_a_working_service_key_and_revokes_it_everywhere(
    database: Settings, apis: tuple[Api, Api]
) -> None:
    api_first, api_second = apis
    owner = await sign_up(api_first, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    made = _creditline(database, "keys", "create", "--name", "gateway", "--scope", "usage:write")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("cls_")
    assert "shown once" in made.stderr
    # Works on both processes (no credits: the usage is refused, but it was authorized).
    for api in (api_first, api_second):
        data = await api.ok(USAGE, {"t": owner.team_id, "k": uuid.uuid4().hex}, secret)
        assert data["recordUsage"]["errors"] == [{"code": "CREDITS_EXHAUSTED"}]

    listed = _creditline(database, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if secret[:12] in row]
    key_id = line.split("\t")[0]
    assert secret[12:] not in listed.stdout

    done = _creditline(database, "keys", "revoke", "--id", key_id)
    assert done.returncode == 0, done.stderr
    for api in (api_first, api_second):
        variables = {"t": owner.team_id, "k": uuid.uuid4().hex}
        assert await _refused_within(api, USAGE, variables, secret) < 5
    again = _creditline(database, "keys", "revoke", "--id", str(uuid.uuid4()))
    assert again.returncode == 2
    assert "No such key" in again.stderr


async def test_last_uses_are_written_when_a_process_shuts_down(database: Settings) -> None:
    server = ServerProcess(
        database.database_url,
        "memory://",
        extra_env={"API_KEY_LAST_USED_FLUSH_SECONDS": "3600"},
    )
    try:
        await server.wait_ready()
        api = http_api(server.http_url)
        try:
            owner = await sign_up(api, f"owner-{uuid.uuid4().hex[:8]}@example.com")
            key, secret = await team_key(api, owner.token, owner.team_id, ["BILLING_READ"])
            await api.ok(TEAM, {"t": owner.team_id}, secret)
        finally:
            await api.http.aclose()
        assert (await TeamApiKey.get(id=key["id"])).last_used_at is None  # not yet written
    finally:
        server.stop()  # SIGTERM: uvicorn's graceful shutdown runs the lifespan's end
    assert (await TeamApiKey.get(id=key["id"])).last_used_at is not None
