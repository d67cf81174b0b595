"""Where a team's rows live, so that a usage transaction touches one shard only
(docs/scaling.md, "The usage path on Citus").

On Citus every team table is distributed by `team_id` and co-located with `teams`, so
all of a team's rows sit in one shard group, and a transaction whose teams share a
shard is planned and committed on one worker (no two-phase commit). `shard_of` names
that shard: Citus's shard id of the team in `teams`, asked once and cached for a while
(shards move: a rebalance, a hot team isolated to its own shard).

On plain PostgreSQL and SQLite the whole database is one shard: `shard_of` is the
identity of the placement there, the same value for every team, so grouping by shard
never splits a batch and the group commit keeps today's throughput.

Tests install their own placement with `use()` (e.g. eight shards by hash).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app import distribution

# The one shard of a database that is not distributed.
SINGLE = 0
# How long an answer stands: a moved shard is noticed within this. A stale answer only
# costs a transaction that spans two shards (Citus then uses two-phase commit); the row
# locks, not the grouping, keep the balances exact.
TTL_SECONDS = 60.0
# Teams remembered at most (then the cache starts again): one int per team.
MAX_CACHED = 100_000

ShardOf = Callable[[uuid.UUID], int]

_fixed: ShardOf | None = None  # a test's placement (`use`)
_distributed: bool | None = None  # whether `teams` is a Citus distributed table
_checked_at = 0.0
_cache: dict[uuid.UUID, tuple[int, float]] = {}  # team -> (shard id, asked at)


def _default_conn() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


def single() -> bool:
    """Whether every team is known to be on the one shard (plain PostgreSQL, SQLite),
    without asking: the hot paths then skip looking teams up one by one."""
    return (
        _fixed is None and _distributed is False and time.monotonic() - _checked_at <= TTL_SECONDS
    )


def cached(team_id: uuid.UUID) -> int | None:
    """The team's shard if known without asking the database (the batcher's hot path);
    None when it must be asked (`shards_of`)."""
    if _fixed is not None:
        return _fixed(team_id)
    distributed = _distributed
    now = time.monotonic()
    if distributed is None or now - _checked_at > TTL_SECONDS:
        return None
    if not distributed:
        return SINGLE
    entry = _cache.get(team_id)
    if entry is None or now - entry[1] > TTL_SECONDS:
        return None
    return entry[0]


def distributed() -> bool:
    """Whether the database was last found to be Citus with `teams` distributed (the
    write path then takes statements Citus routes to one shard)."""
    return _distributed is True


async def is_distributed(conn: BaseDBAsyncClient) -> bool:
    """`distributed()`, found out first when not known or older than `TTL_SECONDS`
    (every write path asks: a grant may come before any usage)."""
    global _distributed, _checked_at
    now = time.monotonic()
    if _distributed is None or now - _checked_at > TTL_SECONDS:
        _distributed = await _detect(conn)
        _checked_at = now
    return _distributed


async def _detect(conn: BaseDBAsyncClient) -> bool:
    """Whether `teams` is distributed by Citus (the extension alone is not enough: until
    the tables are distributed, the database is still one shard)."""
    if not await distribution.is_citus(conn):
        return False
    _, rows = await conn.execute_query(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition "
        "WHERE logicalrelid = to_regclass($1::text) AND partmethod = 'h') AS distributed",
        [distribution.ANCHOR],
    )
    return bool(rows and rows[0]["distributed"])


async def shards_of(
    team_ids: Iterable[uuid.UUID], conn: BaseDBAsyncClient | None = None
) -> dict[uuid.UUID, int]:
    """Each team's shard: asks Citus, in one query, only for teams not cached."""
    teams = list(dict.fromkeys(team_ids))
    if _fixed is not None:
        return {team: _fixed(team) for team in teams}
    if not await is_distributed(conn or _default_conn()):
        return dict.fromkeys(teams, SINGLE)
    now = time.monotonic()
    found: dict[uuid.UUID, int] = {}
    missing: list[uuid.UUID] = []
    for team in teams:
        entry = _cache.get(team)
        if entry is not None and now - entry[1] <= TTL_SECONDS:
            found[team] = entry[0]
        else:
            missing.append(team)
    if missing:
        _, rows = await (conn or _default_conn()).execute_query(
            "SELECT get_shard_id_for_distribution_column('teams', u.t) AS shard "
            "FROM unnest($1::uuid[]) WITH ORDINALITY AS u(t, n) ORDER BY u.n",
            [missing],
        )
        if len(_cache) + len(rows) > MAX_CACHED:
            _cache.clear()
        for team, row in zip(missing, rows, strict=True):
            shard = int(row["shard"])
            _cache[team] = (shard, now)
            found[team] = shard
    return found


async def shard_of(team_id: uuid.UUID, conn: BaseDBAsyncClient | None = None) -> int:
    """The team's shard: `SINGLE` unless the database is Citus with `teams` distributed."""
    return (await shards_of([team_id], conn))[team_id]


def forget() -> None:
    """Drops what was learnt (another database, or shards moved on purpose)."""
    global _distributed, _checked_at
    _distributed = None
    _checked_at = 0.0
    _cache.clear()


@contextmanager
def use(placement: ShardOf) -> Iterator[None]:
    """Installs a placement for the duration (tests: many shards without Citus)."""
    global _fixed
    previous, _fixed = _fixed, placement
    try:
        yield
    finally:
        _fixed = previous
