"""Usage recording over HTTP (hot team, 1,000 teams), batch ingestion and a credits
query, against a real server on PostgreSQL; and PostgreSQL's own ceilings for the first
two, on the same database."""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

from bench import harness

CLIENTS = (1, 16, 64)
BATCH_CLIENTS = 4
CREDITS_QUERY = (
    '{"query":"query($t: ID!) { team(id: $t) { credits { total } } }","variables":{"t":"%s"}}'
)


def _teams_file(team_ids: list[str]) -> str:
    handle, path = tempfile.mkstemp(prefix="creditline-bench-teams-", suffix=".txt")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(team_ids) + "\n")
    return path


def events_per_transaction() -> int:
    """How many events the service puts in one transaction of a large batch."""
    from app.credits.service import EVENTS_PER_TRANSACTION

    return EVENTS_PER_TRANSACTION


def _usage_run(
    server: harness.Server,
    database: harness.Database,
    teams_path: str,
    clients: int,
    seconds: float,
    token: str,
    batch: int = 0,
) -> dict[str, Any]:
    harness.settle(database.name)
    before = database.count("usage_records")
    env = {
        "TEAMS_FILE": teams_path,
        "TOKEN": token,
        "KEY_PREFIX": uuid.uuid4().hex[:10],
        "BATCH": str(batch),
    }
    result = harness.wrk(server.url + "/graphql", "usage.lua", clients, seconds, env)
    accepted = database.count("usage_records") - before
    result["accepted"] = accepted
    result["accepted_per_s"] = accepted / result["duration_s"]
    return result


def run(
    database: harness.Database,
    server: harness.Server,
    *,
    seconds: float,
    hot_team: str,
    many_teams: list[str],
) -> dict[str, Any]:
    token = harness.token()
    hot_path = _teams_file([hot_team])
    many_path = _teams_file(many_teams)
    results: dict[str, Any] = {"hot": {}, "many": {}, "pgbench": {}}
    try:
        for clients in CLIENTS:
            results["hot"][clients] = _usage_run(
                server, database, hot_path, clients, seconds, token
            )
            harness.settle(database.name)
            results["pgbench"][clients] = harness.pgbench_update(
                database, clients, max(2, int(seconds))
            )
        for clients in CLIENTS:
            results["many"][clients] = _usage_run(
                server, database, many_path, clients, seconds, token
            )
        results["batch"] = _usage_run(
            server, database, many_path, BATCH_CLIENTS, seconds, token, batch=1000
        )
        harness.settle(database.name)
        results["batch_ceiling"] = harness.pgbench_batch(
            database, BATCH_CLIENTS, max(2, int(seconds)), events_per_transaction()
        )
        body = CREDITS_QUERY % hot_team
        harness.settle(database.name)
        results["query"] = harness.wrk(
            server.url + "/graphql", "post.lua", 64, seconds, {"BODY": body, "TOKEN": token}
        )
    finally:
        os.unlink(hot_path)
        os.unlink(many_path)
    return results


def noop_ceiling(seconds: float) -> dict[str, Any]:
    """wrk against a do-nothing ASGI app on the same uvicorn stack."""
    server = harness.Server(dict(os.environ), app="bench.noop_app:app")
    try:
        return harness.wrk(server.url + "/", "post.lua", 64, seconds, {"BODY": "{}", "TOKEN": ""})
    finally:
        server.stop()
