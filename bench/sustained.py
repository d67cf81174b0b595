"""Does the usage path cost the same whatever a team's history? One team preloaded with
PRELOAD usage records (and their ledger entries, made in the database so the audit still
balances), then `/v1/usage` at 64 connections for a minute on it, then on a fresh team;
the first and last seconds' rates, and PostgreSQL's count of sequential scans of the
usage and ledger tables during the runs (it must stay 0)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from bench import harness
from bench.ingest import CLIENTS, teams_file

PRELOAD = 1_000_000
AMOUNT_UNITS = 1_000  # 0.00001 USD a record: a million draw $10 from the team's grant
TABLES = ("usage_records", "ledger_entries")


def _run(
    server: harness.Server, database: harness.Database, team_id: str, seconds: float, token: str
) -> dict[str, Any]:
    path = teams_file([team_id])
    try:
        harness.settle(database.name)
        before = harness.seq_scans(database, TABLES)
        env = {"TEAMS_FILE": path, "TOKEN": token, "KEY_PREFIX": uuid.uuid4().hex[:10]}
        with harness.EventRate(database) as rate:
            result = harness.wrk(server.url + "/v1/usage", "v1_usage.lua", CLIENTS, seconds, env)
        after = harness.seq_scans(database, TABLES)
    finally:
        os.unlink(path)
    rates = rate.per_second()
    result["first_10s"] = rate.first(10)
    result["last_10s"] = rate.last(10)
    result["first_s"] = rates[0] if rates else 0.0
    result["last_s"] = rates[-1] if rates else 0.0
    result["seq_scans"] = {t: after[t] - before[t] for t in TABLES}
    return result


def run(
    database: harness.Database, *, seconds: float, workers: int, records: int = PRELOAD
) -> dict[str, Any]:
    old, fresh = harness.create_teams(database, 2)
    harness.preload_usage(database, old, records, AMOUNT_UNITS)
    server = harness.Server(
        harness.server_env(database, BROKER_URL=harness.REDIS_URL), workers=workers
    )
    token = harness.token()
    try:
        preloaded = _run(server, database, old, seconds, token)
        new = _run(server, database, fresh, seconds, token)
    finally:
        server.stop()
    return {"records": records, "preloaded": preloaded, "fresh": new}
