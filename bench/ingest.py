"""The metering gateway's HTTP interface against a real server on PostgreSQL:
`/v1/usage` (one hot team, 1,000 teams), `/v1/usage/batch`, hold + capture pairs, and
GraphQL `recordUsage` on Strawberry beside them; each beside PostgreSQL's own ceiling
measured in the same run on the same database."""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

from bench import harness
from bench.usage import BATCH_CLIENTS, events_per_transaction

CLIENTS = 64
BATCH_EVENTS = 1000
HISTORY = 100_000  # usage records the hot team has before the runs
HISTORY_AMOUNT_UNITS = 1_000


def teams_file(team_ids: list[str]) -> str:
    handle, path = tempfile.mkstemp(prefix="creditline-bench-teams-", suffix=".txt")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(team_ids) + "\n")
    return path


def measured(
    server: harness.Server,
    database: harness.Database,
    url_path: str,
    script: str,
    teams_path: str,
    clients: int,
    seconds: float,
    token: str,
    **extra: str,
) -> dict[str, Any]:
    """One wrk run with the per-second event rate sampled beside it."""
    harness.settle(database.name)
    env = {"TEAMS_FILE": teams_path, "TOKEN": token, "KEY_PREFIX": uuid.uuid4().hex[:10]}
    with harness.EventRate(database) as rate:
        result = harness.wrk(server.url + url_path, script, clients, seconds, {**env, **extra})
    events = sum(r for r in rate.per_second())
    result["events_per_s"] = events / max(len(rate.per_second()), 1)
    result["first_s"] = rate.first(1)
    result["last_s"] = rate.last(1)
    return result


def run(
    database: harness.Database,
    server: harness.Server,
    *,
    seconds: float,
    hot_team: str,
    many_teams: list[str],
    isolate_hot: bool = False,
) -> dict[str, Any]:
    token = harness.token()
    # History first, as a deployed service has: on an empty table PostgreSQL plans the
    # idempotency probe as a scan until autovacuum analyzes it (docs/ingestion.md).
    harness.preload_usage(database, hot_team, HISTORY, HISTORY_AMOUNT_UNITS)
    figures: dict[str, Any] = {}
    if isolate_hot:
        # On Citus: the hot team and its history moved to a shard of its own
        # (docs/scaling.md, "Hot teams").
        figures["isolated"] = harness.isolate_team(database, hot_team)
    hot = teams_file([hot_team])
    many = teams_file(many_teams)
    try:
        common = (server, database)
        figures["v1_hot"] = measured(
            *common, "/v1/usage", "v1_usage.lua", hot, CLIENTS, seconds, token
        )
        figures["v1_many"] = measured(
            *common, "/v1/usage", "v1_usage.lua", many, CLIENTS, seconds, token
        )
        figures["v1_batch"] = measured(
            *common,
            "/v1/usage/batch",
            "v1_usage.lua",
            many,
            BATCH_CLIENTS,
            seconds,
            token,
            BATCH=str(BATCH_EVENTS),
        )
        figures["holds"] = measured(
            *common, "/v1/holds", "hold_capture.lua", many, CLIENTS, seconds, token
        )
        figures["graphql_hot"] = measured(
            *common, "/graphql", "usage.lua", hot, CLIENTS, seconds, token
        )
        harness.settle(database.name)
        figures["pgbench_update"] = harness.pgbench_update(database, CLIENTS, max(2, int(seconds)))
        harness.settle(database.name)
        figures["pgbench_batch"] = harness.pgbench_batch(
            database, BATCH_CLIENTS, max(2, int(seconds)), events_per_transaction()
        )
    finally:
        os.unlink(hot)
        os.unlink(many)
    return figures
