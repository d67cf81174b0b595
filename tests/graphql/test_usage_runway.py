"""Every way usage arrives reaches the series, the runway reads the trailing week, and
one team's history is never another's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.credits import holds
from app.kit import clock
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import grant, set_limit
from tests.support.credits import units
from tests.support.history import EXPORT, RUNWAY, SERIES, all_ledger, all_records, record
from tests.support.holds import hold
from tests.support.ingest import event, post

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)

REMOVE = """mutation($t: ID!, $e: String!) { removeTeamMember(input: {teamId: $t, email: $e}) {
  errors { code } } }"""


@pytest.fixture(autouse=True)
def _june() -> Any:
    clock.freeze(NOW)
    yield
    clock.reset()


async def runway(api: Api, actor: Actor) -> dict[str, Any]:
    data = await api.ok(RUNWAY, {"t": actor.team_id}, actor.token)
    found: dict[str, Any] = data["team"]["credits"]
    return found


async def test_runway_is_the_trailing_weeks_burn(api: Api, admin: Actor, operator: Actor) -> None:
    assert (await runway(api, admin))["runway"] == {
        "dailyBurn": "0.00",
        "daysLeft": None,
        "exhaustsAt": None,
        "creditsDaysLeft": None,
        "creditsExhaustAt": None,
    }
    await grant(api, operator, admin.team_id, "20.00")
    await set_limit(admin.team_id, "7.00")
    # 7.00 in the trailing week (one 167 hours ago, in the window's first hour), and
    # usage older than the window, which does not count.
    week_start = NOW.replace(minute=0) - timedelta(hours=167)
    await record(api, operator, admin.team_id, "3.00", "a", week_start.isoformat())
    await record(api, operator, admin.team_id, "4.00", "b", NOW.isoformat())
    await record(api, operator, admin.team_id, "5.00", "old", (week_start - UNIT).isoformat())
    found = await runway(api, admin)
    assert Decimal(found["total"]) == Decimal("8.00")
    assert found["runway"]["dailyBurn"] == "1.00"
    assert found["runway"]["creditsDaysLeft"] == 8.0
    assert found["runway"]["creditsExhaustAt"] == (NOW + timedelta(days=8)).isoformat()
    # Then the invoiced headroom: 7.00 more, 15 days in all.
    assert found["runway"]["daysLeft"] == 15.0
    assert found["runway"]["exhaustsAt"] == (NOW + timedelta(days=15)).isoformat()
    # A hold reserves credits: they are not there to burn.
    await hold(admin.team_id, "2.00")
    held = (await runway(api, admin))["runway"]
    assert (held["creditsDaysLeft"], held["daysLeft"]) == (6.0, 13.0)


UNIT = timedelta(microseconds=1)


async def test_v1_usage_batches_and_hold_captures_reach_the_series(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "10.00")
    body = event(admin.team_id, "0.25", "v1", dimensions={"model": "m1"})
    assert (await post(client, "/v1/usage", body, operator.token))[0] == 200
    batch = {
        "events": [
            event(admin.team_id, "0.50", f"b{n}", dimensions={"model": "m2"}) for n in range(3)
        ]
    }
    assert (await post(client, "/v1/usage/batch", batch, operator.token))[0] == 200
    held = await hold(admin.team_id, "1.00")
    await holds.capture_hold(held.id, units("0.75"))
    await record(api, operator, admin.team_id, "0.01", "gql", description="via graphql")
    variables = {
        "t": admin.team_id,
        "f": "2026-06-01T00:00:00Z",
        "to": "2026-07-01T00:00:00Z",
        "g": "MONTH",
        "by": "model",
    }
    data = await api.ok(SERIES, variables, admin.token)
    groups = {b["group"]: (b["amount"], b["events"]) for b in data["team"]["usage"]["buckets"]}
    assert groups == {"m1": ("0.25", 1), "m2": ("1.50", 3), None: ("0.76", 2)}
    assert data["team"]["usage"]["total"] == "2.51"


async def test_one_teams_history_is_its_own_and_access_ends_with_membership(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    other = await sign_up(api)
    await grant(api, operator, admin.team_id, "5.00")
    await grant(api, operator, other.team_id, "5.00")
    await record(api, operator, admin.team_id, "1.00", "same-key", description="mine")
    await record(api, operator, other.team_id, "2.00", "same-key", description="theirs")
    variables = {"t": admin.team_id, "f": "2026-06-01T00:00:00Z", "to": "2026-07-01T00:00:00Z"}
    data = await api.ok(SERIES, {**variables, "g": "DAY", "by": "description"}, admin.token)
    assert [b["group"] for b in data["team"]["usage"]["buckets"]] == ["mine"]
    assert [r["description"] for r in await all_records(api, admin, admin.team_id)] == ["mine"]
    assert {e["description"] for e in await all_ledger(api, admin, admin.team_id)} == {
        "mine",
        None,
    }
    # Another team's member reads none of it.
    for query, extra in ((SERIES, {"g": "DAY", "by": None}), (EXPORT, {"k": "USAGE"})):
        assert await api.error_code(query, {**variables, **extra}, other.token) == "NOT_FOUND"
    # A member's export link stops working when they leave the team.
    member = await sign_up(api)
    await join(api, admin, member)
    data = await api.ok(EXPORT, {**variables, "k": "LEDGER"}, member.token)
    url = urlsplit(data["team"]["exportUrl"])
    link = f"{url.path}?{url.query}"
    assert (await client.get(link)).status_code == 200
    assert (await api.ok(REMOVE, {"t": admin.team_id, "e": member.email}, admin.token))[
        "removeTeamMember"
    ]["errors"] == []
    assert (await client.get(link)).status_code == 403
    # A link for one team does not open another's (the team is signed).
    forged = link.replace(admin.team_id, other.team_id)
    assert (await client.get(forged)).status_code == 403
