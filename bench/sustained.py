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


def preload(database: harness.Database, team_id: str, records: int) -> None:
    """`records` past usage records of `team_id`, each drawn from its prepaid grant, with
    time-ordered (UUIDv7-shaped) ids as the service makes them, oldest first."""
    grant = harness.psql(
        f"SELECT id FROM credit_grants WHERE team_id = '{team_id}' AND kind = 'PREPAID'",
        database.name,
    )
    total = records * AMOUNT_UNITS
    harness.psql(
        f"""
        BEGIN;
        CREATE TEMP TABLE preload AS
          SELECT i, ts, uuid(lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0')
                 || '7' || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15)) AS id
          FROM (SELECT i, now() - interval '20 days' + i * interval '1 ms' AS ts
                FROM generate_series(1, {records}) AS i) AS s;
        INSERT INTO usage_records (id, team_id, idempotency_key, amount, from_free,
            from_promotional, from_prepaid, invoiced, description, occurred_at,
            occurred_at_given, period, created_at)
          SELECT id, '{team_id}', 'preload-' || i, {AMOUNT_UNITS}, 0, 0, {AMOUNT_UNITS}, 0,
                 NULL, ts, false, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM'), ts
          FROM preload ORDER BY i;
        INSERT INTO ledger_entries (kind, amount, created_at, grant_id, team_id, usage_id)
          SELECT 'USAGE', -{AMOUNT_UNITS}, ts, '{grant}', '{team_id}', id FROM preload ORDER BY i;
        UPDATE credit_grants SET remaining = remaining - {total} WHERE id = '{grant}';
        UPDATE credit_accounts SET prepaid = prepaid - {total} WHERE team_id = '{team_id}';
        COMMIT;
        """,
        database.name,
    )
    harness.psql("VACUUM (ANALYZE) usage_records, ledger_entries", database.name)


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
    preload(database, old, records)
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
