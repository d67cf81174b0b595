"""Rate limits on mutations: per user, per team, a separate high one for operators.

A refused mutation answers RATE_LIMITED in its payload and does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.credits.models import UsageRecord
from app.kit.ratelimit import Rate, RateLimiter
from app.main import create_app
from app.teams.models import Invitation, Membership, Role, Team
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import grant

CREATE = """mutation($n: String!) { createTeam(input: {name: $n}) { team { id } errors { code message } } }"""
ADD = """mutation($t: ID!, $e: String!) { addTeamMember(input: {teamId: $t, email: $e}) {
  member { email } errors { code } } }"""
USAGE = """mutation($t: ID!, $key: String!) {
  recordUsage(input: {teamId: $t, amount: "0.01", idempotencyKey: $key}) { usage { id } errors { code } } }"""


@pytest.fixture
async def limited(database: Settings) -> AsyncIterator[Api]:
    """An app with small limits: 3 mutations a minute per user, 4 per team, 5 per operator."""
    settings = database.model_copy(
        update={
            "rate_limit_user_per_minute": 3,
            "rate_limit_team_per_minute": 4,
            "rate_limit_operator_per_minute": 5,
        }
    )
    app = create_app(settings, manage_db=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield Api(http)


async def _create(api: Api, actor: Actor, name: str) -> dict[str, Any]:
    return (await api.ok(CREATE, {"n": name}, actor.token))["createTeam"]  # type: ignore[no-any-return]


async def test_a_user_over_the_limit_gets_rate_limited_and_nothing_is_done(limited: Api) -> None:
    alice = await sign_up(limited, "alice@example.com")
    for i in range(3):
        assert (await _create(limited, alice, f"t{i}"))["errors"] == []
    teams_before = await Team.all().count()
    refused = await _create(limited, alice, "one too many")
    assert refused["team"] is None
    assert refused["errors"][0]["code"] == "RATE_LIMITED"
    assert "nothing was done" in refused["errors"][0]["message"]
    assert await Team.all().count() == teams_before
    # Another user has their own bucket.
    bob = await sign_up(limited, "bob@example.com")
    assert (await _create(limited, bob, "bob's"))["errors"] == []
    # Queries are not rate limited.
    for _ in range(5):
        await limited.ok("{ viewer { email } }", token=alice.token)


async def test_a_team_is_limited_across_its_members(limited: Api) -> None:
    owner = await sign_up(limited, "owner@example.com")
    admins = [await sign_up(limited, f"admin{i}@example.com") for i in range(2)]
    for a in admins:
        await join(limited, owner, a)  # accepting names no team: only the user's bucket
    await Membership.filter(team_id=owner.team_id).update(role=Role.ADMIN)
    # owner used 2 of the team's 4; each admin adds one more: 4 in all, then refused.
    for i, a in enumerate(admins):
        data = await limited.ok(ADD, {"t": owner.team_id, "e": f"x{i}@example.com"}, a.token)
        assert data["addTeamMember"]["errors"] == []
    invited_before = await Invitation.filter(team_id=owner.team_id).count()
    data = await limited.ok(ADD, {"t": owner.team_id, "e": "late@example.com"}, admins[0].token)
    assert data["addTeamMember"]["errors"] == [{"code": "RATE_LIMITED"}]
    assert await Invitation.filter(team_id=owner.team_id).count() == invited_before
    # The same admin may still act on their own team: the team's bucket was empty, not theirs.
    assert (await _create(limited, admins[0], "own"))["errors"] == []


LIMIT = """mutation($t: ID!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: "0"}) {
  errors { code } } }"""


async def test_strangers_cannot_use_up_a_teams_bucket(limited: Api) -> None:
    """Three signed-in non-members spend their own buckets on the team (9 tries, more
    than the team's 4): each answer is NOT_FOUND, and the team's admin is not limited."""
    owner = await sign_up(limited, "victim-owner@example.com")
    strangers = [await sign_up(limited, f"stranger{i}@example.com") for i in range(3)]
    for stranger in strangers:
        for _ in range(3):
            assert await limited.error_code(LIMIT, {"t": owner.team_id}, stranger.token) == (
                "NOT_FOUND"
            )
        # Their own bucket is what ran out.
        refused = await _create(limited, stranger, "mine")
        assert refused["errors"][0]["code"] == "RATE_LIMITED"
    for _ in range(3):
        data = await limited.ok(LIMIT, {"t": owner.team_id}, owner.token)
        assert data["setInvoicedSpendingLimit"]["errors"] == []


async def test_operators_have_their_own_limit(limited: Api) -> None:
    operator = await sign_up(limited, "ops@platform.example", operator=True)
    team = await sign_up(limited, "customer@example.com")
    await grant(limited, operator, team.team_id, "10.00")  # 1 of 5
    results = [
        (await limited.ok(USAGE, {"t": team.team_id, "key": f"k{i}"}, operator.token))[
            "recordUsage"
        ]
        for i in range(5)
    ]
    # 4 recorded (more than the user limit of 3, and the team's 4 does not apply), then refused.
    assert [r["errors"] for r in results] == [[], [], [], [], [{"code": "RATE_LIMITED"}]]
    assert await UsageRecord.all().count() == 4


async def test_the_default_operator_limit_lets_the_metering_gateway_through(
    api: Api, admin: Actor, operator: Actor
) -> None:
    """With default settings, 300 usage events in a row are all accepted."""
    await grant(api, operator, admin.team_id, "100.00")
    for i in range(300):
        data = await api.ok(USAGE, {"t": admin.team_id, "key": f"g{i}"}, operator.token)
        assert data["recordUsage"]["errors"] == [], i
    assert await UsageRecord.all().count() == 300


async def test_unauthenticated_mutations_still_answer_unauthenticated(limited: Api) -> None:
    for _ in range(5):
        code = await limited.error_code(CREATE, {"n": "x"})
        assert code == "UNAUTHENTICATED"


def test_token_bucket_refills_and_takes_all_or_nothing() -> None:
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    slow, fast = Rate(per_minute=2), Rate(per_minute=600)
    assert limiter.take([("a", slow)]) is None
    assert limiter.take([("a", slow)]) is None
    assert limiter.take([("a", slow)]) == "a"
    now[0] += 30  # half a minute: one token back
    assert limiter.take([("a", slow)]) is None
    assert limiter.take([("a", slow)]) == "a"
    # Two buckets: when the second is empty, the first keeps its token.
    assert limiter.take([("b", fast), ("a", slow)]) == "a"
    before = limiter._buckets["b"][0]
    assert before == 600
    now[0] += 30
    assert limiter.take([("b", fast), ("a", slow)]) is None
    assert limiter._buckets["b"][0] == 599
    # Never above the burst, however long idle.
    now[0] += 10_000
    assert limiter.take([("a", slow)]) is None
    assert limiter.take([("a", slow)]) is None
    assert limiter.take([("a", slow)]) == "a"


def test_the_bucket_table_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], max_keys=100)
    rate = Rate(per_minute=60)
    for i in range(1000):
        now[0] += 0.001
        limiter.take([(f"k{i}", rate)])
    assert len(limiter) <= 100
