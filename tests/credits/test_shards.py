"""Usage transactions confined to one shard (docs/scaling.md): the batcher and a batch's
chunks group teams by `shard_of`, without losing a team's order or a unit of money.

Citus is not needed: a test placement of eight shards by hash stands in for it, and
the per-table writes Citus takes are exercised on PostgreSQL too. Run against a Citus
database (TEST_DATABASE_URL, docs/scaling.md, "The suite on Citus"), the same tests take
Citus's own placement of the teams instead, and the one-statement form, which Citus
cannot plan on one shard, is not run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise import connections

from app.billing.ledger_audit import audit
from app.credits import batching, shards, store
from app.credits import service as credits
from app.credits.models import CreditAccount, CreditGrant, CreditKind, UsageRecord
from app.kit import clock
from app.kit.errors import ErrorCode
from app.teams.models import Team

SHARDS = 8
TEAMS = 200
EVENTS_PER_TEAM = 10  # 2,000 events
CENT = 1_000_000  # $0.01 in units of 1e-8 USD


def by_hash(team_id: uuid.UUID) -> int:
    """Eight shards, as Citus would hash teams into them."""
    return team_id.int % SHARDS


async def _on_citus() -> bool:
    """Whether the suite's database is Citus with `teams` distributed (asked afresh)."""
    shards.forget()
    return await shards.is_distributed(connections.get("default"))


@pytest.fixture(params=["one statement", "per table"])
async def write_form(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Both forms of the usage writes (the per-table one is Citus's; SQLite has one)."""
    if request.param == "one statement" and await _on_citus():
        pytest.skip("Citus plans only the per-table form on one shard")
    store.set_split_writes(request.param == "per table")
    yield request.param
    store.set_split_writes(None)


async def _teams(count: int) -> list[uuid.UUID]:
    now = clock.now()
    teams = [Team(id=uuid.uuid4(), name=f"shard team {i}", created_at=now) for i in range(count)]
    await Team.bulk_create(teams)
    await CreditAccount.bulk_create([CreditAccount(team_id=t.id, updated_at=now) for t in teams])
    return [t.id for t in teams]


def _budget(index: int) -> int:
    """Team `index` affords its first `k` events (amounts 1..10 cents), plus a remainder
    smaller than the next one: k runs from 1 to 9 across teams."""
    k = 1 + index % 9
    return sum(range(1, k + 1)) * CENT + (k // 2) * CENT


async def _funded(count: int) -> list[uuid.UUID]:
    teams = await _teams(count)
    for index, team in enumerate(teams):
        await credits.grant_credits(team, CreditKind.PREPAID, _budget(index))
    return teams


@pytest.fixture
async def funded_teams() -> list[uuid.UUID]:
    return await _funded(TEAMS)


@pytest.fixture
async def placement(funded_teams: list[uuid.UUID]) -> AsyncIterator[shards.ShardOf]:
    """Eight shards by hash, installed as the placement; on Citus, Citus's own."""
    if await _on_citus():
        real = await shards.shards_of(funded_teams)
        yield real.__getitem__
        return
    with shards.use(by_hash):
        yield by_hash


async def test_2000_events_of_200_teams_run_one_shard_per_transaction(
    funded_teams: list[uuid.UUID],
    placement: shards.ShardOf,
    write_form: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    teams = funded_teams
    batches: list[set[uuid.UUID]] = []  # what the batcher hands to record_usage
    transactions: list[set[uuid.UUID]] = []  # what each transaction locks
    apply_usage = credits._apply_usage
    record_usage = credits.record_usage

    async def recorded(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
        transactions.append({r.team_id for r in requests})
        return await apply_usage(requests)

    async def batched(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
        batches.append({r.team_id for r in requests})
        return await record_usage(requests)

    monkeypatch.setattr(credits, "_apply_usage", recorded)
    monkeypatch.setattr(batching, "record_usage", batched)
    batcher = batching.UsageBatcher()
    # Arrival order: round after round, every team's next event (amount: its number).
    requests = [
        credits.UsageRequest(team_id=team, amount=(n + 1) * CENT, idempotency_key=f"k{n}")
        for n in range(EVENTS_PER_TEAM)
        for team in teams
    ]
    tasks = [asyncio.create_task(batcher.submit(r)) for r in requests]
    results = await asyncio.gather(*tasks)

    assert len(batches) >= len({placement(t) for t in teams})  # every shard had its own
    for teams_of_one in batches:
        assert len({placement(t) for t in teams_of_one}) == 1, "a batch spans shards"
    for teams_of_one in transactions:
        assert len({placement(t) for t in teams_of_one}) == 1, "a transaction spans shards"
    # Per-team order: the accepted events are exactly the first ones that fit.
    for index, team in enumerate(teams):
        k = 1 + index % 9
        outcome = [
            (result.record is not None, result.error.code if result.error else None)
            for request, result in zip(requests, results, strict=True)
            if request.team_id == team
        ]
        expected = [(True, None)] * k + [(False, ErrorCode.CREDITS_EXHAUSTED)] * (
            EVENTS_PER_TEAM - k
        )
        assert outcome == expected, (index, outcome)
    accounts = await CreditAccount.filter(team_id__in=teams)
    assert all(min(a.free, a.promotional, a.prepaid) >= 0 for a in accounts)
    left = {a.team_id: a.prepaid for a in accounts}
    assert left == {team: (1 + i % 9) // 2 * CENT for i, team in enumerate(teams)}
    assert await CreditGrant.filter(remaining__lt=0).count() == 0
    assert await UsageRecord.filter(team_id__in=teams).count() == sum(
        1 + i % 9 for i in range(TEAMS)
    )
    assert await audit() == []


async def test_a_large_batch_is_chunked_by_shard_then_by_ranges(
    funded_teams: list[uuid.UUID], placement: shards.ShardOf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """record_usage (recordUsageBatch) takes one shard's teams per transaction too."""
    teams = funded_teams[:40]
    transactions: list[set[uuid.UUID]] = []
    apply_usage = credits._apply_usage

    async def recorded(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
        transactions.append({r.team_id for r in requests})
        return await apply_usage(requests)

    monkeypatch.setattr(credits, "_apply_usage", recorded)
    requests = [
        credits.UsageRequest(team_id=team, amount=1, idempotency_key=f"b{n}")
        for n in range(3)
        for team in teams
    ]
    results = await credits.record_usage(requests)
    assert all(r.record is not None for r in results)
    assert len(transactions) == len({placement(t) for t in teams})
    for teams_of_one in transactions:
        assert len({placement(t) for t in teams_of_one}) == 1
    assert await audit() == []


def test_chunks_never_mix_shards_and_keep_each_teams_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(credits, "EVENTS_PER_TRANSACTION", 4)
    teams = sorted((uuid.uuid4() for _ in range(6)), key=str)
    shard = {team: index % 2 for index, team in enumerate(teams)}
    order = [3, 0, 3, 1, 4, 0, 2, 3, 1, 5, 2, 0]
    requests = [
        credits.UsageRequest(team_id=teams[t], amount=1, idempotency_key=f"k{i}")
        for i, t in enumerate(order)
    ]
    chunks = credits._chunks(requests, list(range(len(requests))), shard)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(requests)))
    for chunk in chunks:
        assert len({shard[requests[i].team_id] for i in chunk}) == 1
        for team in {order[i] for i in chunk}:
            positions = [i for i in chunk if order[i] == team]
            assert positions == sorted(positions)
    # A few events of two shards still take two transactions.
    assert len(credits._chunks(requests[:2], [0, 1], shard)) == 2
    # One shard: as many transactions as before.
    one = dict.fromkeys(teams, 0)
    assert credits._chunks(requests, list(range(len(requests))), one) == credits._chunks(
        requests, list(range(len(requests)))
    )


async def test_one_database_is_one_shard() -> None:
    """Plain PostgreSQL and SQLite: every team on the one shard, so the batcher's
    batches are as large as before, and nothing is asked per team once known. On Citus:
    each team's shard of `teams`, as Citus names it, then cached."""
    funded_teams = await _funded(3)
    citus = await _on_citus()
    shards.forget()
    assert shards.cached(funded_teams[0]) is None  # not known before the first ask
    placement = await shards.shards_of(funded_teams)
    if citus:
        _, rows = await connections.get("default").execute_query(
            "SELECT s.shardid FROM pg_dist_shard s WHERE s.logicalrelid = 'teams'::regclass "
            "AND s.shardid = get_shard_id_for_distribution_column('teams', $1::uuid)",
            [funded_teams[1]],
        )
        assert [row["shardid"] for row in rows] == [placement[funded_teams[1]]]
        assert shards.SINGLE not in placement.values()
        assert not shards.single()
        assert shards.distributed()
        assert shards.cached(funded_teams[2]) == placement[funded_teams[2]]
        return
    assert set(placement.values()) == {shards.SINGLE}
    assert await shards.shard_of(funded_teams[1]) == shards.SINGLE
    assert shards.single()
    assert not shards.distributed()
    assert shards.cached(funded_teams[2]) == shards.SINGLE


async def test_the_batcher_fills_one_batch_from_all_teams_on_one_shard(
    funded_teams: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Citus nothing is split by shard: 200 teams' events share one batch. On
    Citus each shard's teams share one."""
    citus = await _on_citus()
    placement = await shards.shards_of(funded_teams)  # known before: no lookup between
    batches: list[set[uuid.UUID]] = []
    apply_usage = credits._apply_usage

    async def recorded(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
        batches.append({r.team_id for r in requests})
        return await apply_usage(requests)

    monkeypatch.setattr(credits, "_apply_usage", recorded)
    monkeypatch.setattr(credits, "EVENTS_PER_TRANSACTION", 1_000)
    batcher = batching.UsageBatcher(max_events=500, max_active=1)
    requests = [
        credits.UsageRequest(team_id=team, amount=CENT, idempotency_key="one")
        for team in funded_teams
    ]
    results = await asyncio.gather(*(batcher.submit(r) for r in requests))
    assert all(r.record is not None for r in results)
    if citus:
        by_shard: dict[int, set[uuid.UUID]] = {}
        for team, shard in placement.items():
            by_shard.setdefault(shard, set()).add(team)
        assert sorted(map(sorted, batches)) == sorted(map(sorted, by_shard.values()))
        return
    assert [len(b) for b in batches] == [TEAMS]


async def test_a_failed_shard_lookup_fails_only_its_waiters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    funded_teams = await _funded(1)
    shards.forget()

    async def broken(*_: Any, **__: Any) -> dict[uuid.UUID, int]:
        raise ConnectionError("coordinator gone")

    monkeypatch.setattr(shards, "shards_of", broken)
    batcher = batching.UsageBatcher()
    request = credits.UsageRequest(team_id=funded_teams[0], amount=CENT, idempotency_key="x")
    with pytest.raises(ConnectionError):
        await batcher.submit(request)
    monkeypatch.undo()
    result = await batcher.submit(request)  # the next lookup works: applied
    assert result.record is not None
