"""Holds in GraphQL: `Credits.held` and `available`, `Team.holds` pages for the team's
members and nobody else."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.credits import holds as holds_service
from app.kit import clock
from app.teams.models import Membership, Role, User
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import grant
from tests.support.holds import hold

CREDITS = """query($t: ID!) { team(id: $t) { credits {
  total held available invoicedRemaining status } } }"""
HOLDS = """query($t: ID!, $first: Int, $after: String, $status: HoldStatus) { team(id: $t) {
  holds(first: $first, after: $after, status: $status) {
    edges { cursor node { id teamId amount captured status idempotencyKey expiresAt createdAt } }
    pageInfo { hasNextPage endCursor } } } }"""


async def test_credits_show_what_is_held_and_available(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "20.00")
    await hold(admin.team_id, "7.50")
    credits = (await api.ok(CREDITS, {"t": admin.team_id}, admin.token))["team"]["credits"]
    assert credits == {
        "total": "20.00",
        "held": "7.50",
        "available": "12.50",
        "invoicedRemaining": "0.00",
        "status": "ACTIVE",
    }
    await hold(admin.team_id, "12.50")
    credits = (await api.ok(CREDITS, {"t": admin.team_id}, admin.token))["team"]["credits"]
    assert (credits["held"], credits["available"]) == ("20.00", "0.00")


async def test_team_holds_pages_newest_first_and_filters_by_status(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "20.00")
    made = []
    for i in range(5):
        made.append(await hold(admin.team_id, f"1.0{i}", f"k-{i}", ttl=60 if i == 0 else 600))
        clock.advance(timedelta(milliseconds=5))
    await holds_service.release_hold(made[1].id)
    await holds_service.capture_hold(made[2].id, 50_000_000)
    clock.advance(timedelta(seconds=61))  # the first one expires, unswept
    seen: list[dict[str, object]] = []
    after = None
    while True:
        page = await api.ok(HOLDS, {"t": admin.team_id, "first": 2, "after": after}, admin.token)
        holds = page["team"]["holds"]
        seen.extend(edge["node"] for edge in holds["edges"])
        if not holds["pageInfo"]["hasNextPage"]:
            break
        after = holds["pageInfo"]["endCursor"]
    assert [n["id"] for n in seen] == [str(h.id) for h in reversed(made)]
    assert [n["status"] for n in seen] == ["HELD", "HELD", "CAPTURED", "RELEASED", "EXPIRED"]
    assert (seen[-1]["amount"], seen[-1]["idempotencyKey"]) == ("1.00", "k-0")
    assert (seen[2]["amount"], seen[2]["captured"]) == ("1.02", "0.50")
    for status, count in (("HELD", 2), ("EXPIRED", 1), ("RELEASED", 1), ("CAPTURED", 1)):
        page = await api.ok(HOLDS, {"t": admin.team_id, "status": status}, admin.token)
        nodes = [e["node"] for e in page["team"]["holds"]["edges"]]
        assert len(nodes) == count, status
        assert {n["status"] for n in nodes} == {status}
    bad = await api.raw(HOLDS, {"t": admin.team_id, "after": "nope"}, admin.token)
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_members_see_the_holds_outsiders_do_not(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "20.00")
    made = await hold(admin.team_id, "3.00")
    member = await sign_up(api)
    user = await User.get(email=member.email)
    await Membership.create(
        team_id=uuid.UUID(admin.team_id), user=user, role=Role.MEMBER, created_at=clock.now()
    )
    page = await api.ok(HOLDS, {"t": admin.team_id}, member.token)
    assert [e["node"]["id"] for e in page["team"]["holds"]["edges"]] == [str(made.id)]
    outsider = await sign_up(api)
    code = await api.error_code(HOLDS, {"t": admin.team_id}, outsider.token)
    assert code == "NOT_FOUND"
