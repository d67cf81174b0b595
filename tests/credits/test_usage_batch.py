"""recordUsageBatch: up to 1,000 events across teams, one result per event in order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from app.billing.ledger_audit import audit
from app.credits import batching
from app.credits import service as credits
from app.kit.money import parse
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import credits as read_credits
from tests.support.billing import grant

BATCH = """mutation($e: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $e}) {
  results { usage { idempotencyKey amount fromFree invoiced } errors { code field } } errors { code field } } }"""


def event(team: str, amount: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"teamId": team, "amount": amount, "idempotencyKey": key, **extra}


async def test_results_in_input_order_with_each_event_all_or_nothing(
    api: Api, admin: Actor, operator: Actor
) -> None:
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "1.00")
    await grant(api, operator, other.team_id, "0.50")
    events = [
        event(admin.team_id, "0.60", "a1"),
        event(other.team_id, "0.40", "b1"),
        event(admin.team_id, "0.60", "a2"),  # does not fit: rejected whole
        event(admin.team_id, "0.40", "a3"),  # fits after a2 was rejected
        event(other.team_id, "abc", "b2"),
        event("not-a-team", "0.01", "x"),
        event(str(uuid.uuid4()), "0.01", "y"),
        event(admin.team_id, "0.60", "a1"),  # replay of a1 inside the same batch
        event(admin.team_id, "0.70", "a1"),  # same key, other amount
        event(other.team_id, "0.10", "b3"),
    ]
    data = await api.ok(BATCH, {"e": events}, operator.token)
    results = data["recordUsageBatch"]["results"]
    summary = [
        (r["usage"]["idempotencyKey"] if r["usage"] else None, [e["code"] for e in r["errors"]])
        for r in results
    ]
    assert summary == [
        ("a1", []),
        ("b1", []),
        (None, ["CREDITS_EXHAUSTED"]),
        ("a3", []),
        (None, ["INVALID_AMOUNT"]),
        (None, ["NOT_FOUND"]),
        (None, ["NOT_FOUND"]),
        ("a1", []),
        (None, ["IDEMPOTENCY_KEY_REUSED"]),
        ("b3", []),
    ]
    assert (await read_credits(api, admin))["total"] == "0.00"
    assert (await read_credits(api, other))["total"] == "0.00"
    # Replaying the whole batch changes nothing and answers the same.
    again = await api.ok(BATCH, {"e": events}, operator.token)
    assert again["recordUsageBatch"]["results"] == results


async def test_a_thousand_events_and_no_more(api: Api, admin: Actor, operator: Actor) -> None:
    await grant(api, operator, admin.team_id, "10.00")
    events = [event(admin.team_id, "0.001", f"k{i}") for i in range(1000)]
    data = await api.ok(BATCH, {"e": events}, operator.token)
    assert all(r["errors"] == [] for r in data["recordUsageBatch"]["results"])
    assert (await read_credits(api, admin))["total"] == "9.00"
    too_many = await api.ok(BATCH, {"e": [*events, event(admin.team_id, "1", "x")]}, operator.token)
    assert too_many["recordUsageBatch"]["errors"] == [{"code": "INVALID_INPUT", "field": "events"}]
    assert (await read_credits(api, admin))["total"] == "9.00"


async def test_batch_is_operator_only(api: Api, admin: Actor) -> None:
    code = await api.error_code(BATCH, {"e": [event(admin.team_id, "1", "k")]}, admin.token)
    assert code == "FORBIDDEN"


async def test_group_commit_keeps_each_events_own_result(
    api: Api, admin: Actor, operator: Actor
) -> None:
    """Concurrent single events through the batcher: results match a sequential run."""
    await grant(api, operator, admin.team_id, "1.00")
    team = uuid.UUID(admin.team_id)
    requests = [
        credits.UsageRequest(team_id=team, amount=parse("0.30"), idempotency_key=f"g{i % 5}")
        for i in range(10)
    ]
    results = await asyncio.gather(*(batching.submit(r) for r in requests))
    accepted_keys = {r.record.idempotency_key for r in results if r.record}
    errors = [r.error.code.value for r in results if r.error]
    # Keys g0..g2 fit (0.90), g3 and g4 do not; their repeats answer the same way.
    assert accepted_keys == {"g0", "g1", "g2"}
    assert sorted(errors) == ["CREDITS_EXHAUSTED"] * 4
    assert (await read_credits(api, admin))["total"] == "0.10"


async def test_batcher_keeps_each_teams_order_across_split_batches(
    api: Api, admin: Actor, operator: Actor
) -> None:
    """More events than fit in one batch, two teams: every event of a team applies in
    arrival order, so exactly the first ones that fit are accepted."""
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "1.00")
    await grant(api, operator, other.team_id, "0.50")
    batcher = batching.UsageBatcher(max_events=3, max_active=2)
    teams = [uuid.UUID(admin.team_id), uuid.UUID(other.team_id)]
    requests = [
        credits.UsageRequest(team_id=teams[i % 2], amount=parse("0.10"), idempotency_key=f"o{i}")
        for i in range(30)
    ]
    results = await asyncio.gather(*(batcher.submit(r) for r in requests))
    accepted = [r.record.idempotency_key for r in results if r.record]
    # Team A (even keys) affords 10 events, team B (odd keys) 5: the earliest ones.
    assert accepted == [f"o{i}" for i in range(30) if i < (20 if i % 2 == 0 else 10)]
    assert (await read_credits(api, admin))["total"] == "0.00"
    assert (await read_credits(api, other))["total"] == "0.00"


def test_large_batches_split_by_ranges_of_teams(monkeypatch: Any) -> None:
    """Each transaction takes whole teams (their events in input order) and a later range
    of team ids than the one before, so concurrent batches never deadlock."""
    monkeypatch.setattr(credits, "EVENTS_PER_TRANSACTION", 4)
    teams = sorted(uuid.uuid4() for _ in range(5))
    order = [3, 0, 3, 1, 4, 0, 2, 3, 1, 4, 2, 0]
    requests = [
        credits.UsageRequest(team_id=teams[t], amount=1, idempotency_key=f"k{i}")
        for i, t in enumerate(order)
    ]
    chunks = credits._chunks(requests, list(range(len(requests))))
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(requests)))
    assert [[order[i] for i in chunk] for chunk in chunks] == [
        [0, 0, 0, 1, 1],
        [2, 2, 3, 3, 3],
        [4, 4],
    ]
    for chunk in chunks:  # input order within a team
        for team in {order[i] for i in chunk}:
            positions = [i for i in chunk if order[i] == team]
            assert positions == sorted(positions)
    one_team = requests[:1] * 9
    assert credits._chunks(one_team, list(range(9))) == [list(range(9))]


async def test_a_split_batch_applies_each_teams_events_in_order(
    api: Api, admin: Actor, operator: Actor, monkeypatch: Any
) -> None:
    other = await sign_up(api, "other@example.com")
    await grant(api, operator, admin.team_id, "0.50")
    await grant(api, operator, other.team_id, "0.30")
    monkeypatch.setattr(credits, "EVENTS_PER_TRANSACTION", 2)
    transactions = 0
    apply_usage = credits._apply_usage

    async def counted(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
        nonlocal transactions
        transactions += 1
        return await apply_usage(requests)

    monkeypatch.setattr(credits, "_apply_usage", counted)
    teams = [admin.team_id, other.team_id]
    events = [event(teams[i % 2], "0.10", f"s{i}") for i in range(14)]
    data = await api.ok(BATCH, {"e": events}, operator.token)
    accepted = [
        r["usage"]["idempotencyKey"] for r in data["recordUsageBatch"]["results"] if r["usage"]
    ]
    # Admin (even keys) affords 5 events, the other team 3: the earliest of each.
    assert accepted == ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s8"]
    assert transactions == 2
    assert (await read_credits(api, admin))["total"] == "0.00"
    assert (await read_credits(api, other))["total"] == "0.00"


async def test_a_split_batch_commits_its_transactions_side_by_side_on_postgresql(
    api: Api, admin: Actor, operator: Actor, monkeypatch: Any
) -> None:
    """Chunks lock disjoint teams: on PostgreSQL they run at once, each team's events
    still in input order, every balance exact; SQLite applies them one after another."""
    teams = [admin.team_id]
    for number in range(7):
        teams.append((await sign_up(api, f"side-{number}@example.com")).team_id)
    for team in teams:
        await grant(api, operator, team, "0.30")
    monkeypatch.setattr(credits, "EVENTS_PER_TRANSACTION", 2)
    in_flight = peak = 0
    apply_usage = credits._apply_usage

    async def counted(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)  # let the other chunks start, if they may
            return await apply_usage(requests)
        finally:
            in_flight -= 1

    monkeypatch.setattr(credits, "_apply_usage", counted)
    events = [event(teams[i % 8], "0.10", f"side-{i}") for i in range(40)]
    data = await api.ok(BATCH, {"e": events}, operator.token)
    accepted = [r["usage"] is not None for r in data["recordUsageBatch"]["results"]]
    # Each team affords three events: its first three, in input order.
    assert accepted == [i < 24 for i in range(40)]
    postgres = credits._concurrent_transactions()
    assert (peak > 1) is postgres
    assert peak <= credits.MAX_CONCURRENT_CHUNKS
    for team in teams:
        actor = Actor(email="", token=operator.token, team_id=team)
        assert (await read_credits(api, actor))["total"] == "0.00"
    assert await audit() == []
