"""Usage history on a large database (`scripts/bench history`): 10 million usage records
across 1,000 teams, one of them holding 2 million, loaded with SQL into the records, the
ledger and the hourly rollups; then, through a real server:

- a 90-day daily series grouped by a dimension (`Team.usage`), p50/p99 over many requests,
  for the big team and for small ones;
- the time to the first CSV row of a year's export of the big team, and the whole export;
- `/v1/usage` events/s with the rollups kept and with them turned off (USAGE_ROLLUPS),
  in alternating runs of the same length: what the rollups cost the usage path.

`--quick` loads 200,000 records across 100 teams instead (the big team holds a fifth).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import harness
from bench.ingest import CLIENTS, teams_file

RECORDS, TEAMS = 10_000_000, 1_000
QUICK_RECORDS, QUICK_TEAMS = 200_000, 100
BIG_SHARE = 5  # one record in five is the big team's: 2 million of 10 million
CHUNK = 1_000_000
SERIES_REQUESTS, QUICK_SERIES_REQUESTS = 300, 60
SERIES = """query($t: ID!, $f: DateTime!, $to: DateTime!) { team(id: $t) {
  usage(from: $f, to: $to, granularity: DAY, groupBy: "model") {
    total events buckets { start group amount events fromCredits invoiced } } } }"""
EXPORT = """query($t: ID!, $f: DateTime!, $to: DateTime!) { team(id: $t) {
  exportUrl(kind: USAGE, from: $f, to: $to) } }"""


def _chunk_sql(lo: int, hi: int, others: int, slots: int) -> str:
    """Records lo..hi-1 (of the generated sequence) with their ledger draws. Record i is
    the big team's when i % BIG_SHARE == 0, spread evenly over the last 365 days; the
    others go round-robin to the small teams, eight at a time within one hour, those
    hours (`slots` of them) spread over the year."""
    return f"""
    BEGIN;
    CREATE TEMP TABLE chunk ON COMMIT DROP AS
      SELECT i, t.id AS team_id, t.grant_id, ts, 1000 + (i % 97) * 13 AS amount,
             uuid(lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0')
               || '7' || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15)) AS id,
             big
      FROM (
        SELECT i, big,
          CASE WHEN big THEN 0 ELSE 1 + (j % {others}) END AS n,
          CASE WHEN big
            THEN bench_origin() + (i / {BIG_SHARE}) * (interval '365 days' / bench_big_count())
            ELSE bench_origin() + ((j / {others}) / 8) * (interval '365 days' / {slots})
                 + ((j / {others}) % 8) * interval '7 minutes'
                 + (j % {others}) * interval '1 second'
          END AS ts
        FROM (SELECT i, i % {BIG_SHARE} = 0 AS big, i - i / {BIG_SHARE} - 1 AS j
              FROM generate_series({lo}, {hi - 1}) AS i) AS s
      ) AS r JOIN bench_teams AS t ON t.n = r.n;
    INSERT INTO usage_records (id, team_id, idempotency_key, amount, from_free,
        from_promotional, from_prepaid, invoiced, description, occurred_at,
        occurred_at_given, period, created_at, dimensions)
      SELECT id, team_id, 'h-' || i, amount, 0, 0, amount, 0,
             CASE WHEN big THEN 'd' || (i % 5) ELSE 'd' || (i % 2) END,
             ts, true, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM'), ts,
             CASE WHEN big
               THEN jsonb_build_object('model', 'm' || (i % 8), 'region', 'r' || (i % 4))
               ELSE jsonb_build_object('model', 'm' || (i % 3), 'region', 'r' || (i % 2)) END
      FROM chunk ORDER BY i;
    INSERT INTO ledger_entries (kind, amount, created_at, grant_id, team_id, usage_id)
      SELECT 'USAGE', -amount, ts, grant_id, team_id, id FROM chunk ORDER BY i;
    COMMIT;
    """


def preload(database: harness.Database, teams: list[str], records: int) -> dict[str, Any]:
    """`records` usage records (and their ledger draws) across `teams`, teams[0] the big
    one, then the hourly rollups built from them as the migration backfills them."""
    started = time.monotonic()
    others = len(teams) - 1
    rows = ", ".join(f"({n}, '{team}'::uuid)" for n, team in enumerate(teams))
    big_count = (records - 1) // BIG_SHARE + 1
    per_team = -(-(records - big_count) // others)
    slots = -(-per_team // 8)
    origin = (datetime.now(UTC) - timedelta(days=365)).replace(microsecond=0).isoformat()
    harness.psql(
        f"""
        CREATE TABLE bench_teams AS
          SELECT v.n, v.id, g.id AS grant_id FROM (VALUES {rows}) AS v(n, id)
          JOIN credit_grants AS g ON g.team_id = v.id AND g.kind = 'PREPAID';
        CREATE FUNCTION bench_origin() RETURNS timestamptz IMMUTABLE LANGUAGE sql
          AS $$ SELECT '{origin}'::timestamptz $$;
        CREATE FUNCTION bench_big_count() RETURNS bigint IMMUTABLE LANGUAGE sql
          AS $$ SELECT {big_count}::bigint $$;
        """,
        database.name,
    )
    for lo in range(0, records, CHUNK):
        sql = _chunk_sql(lo, min(lo + CHUNK, records), others, slots)
        harness.psql(sql, database.name)
        print(f"  loaded {min(lo + CHUNK, records):,} records", flush=True)
    loaded = time.monotonic()
    harness.psql(
        """
        BEGIN;
        CREATE TEMP TABLE spent ON COMMIT DROP AS
          SELECT team_id, grant_id, -sum(amount) AS total FROM ledger_entries
          WHERE kind = 'USAGE' GROUP BY team_id, grant_id;
        UPDATE credit_grants AS g SET remaining = remaining - s.total
          FROM spent AS s WHERE g.id = s.grant_id;
        UPDATE credit_accounts AS a SET prepaid = prepaid - s.total
          FROM spent AS s WHERE a.team_id = s.team_id;
        DROP TABLE bench_teams;
        DROP FUNCTION bench_origin();
        DROP FUNCTION bench_big_count();
        COMMIT;
        """,
        database.name,
    )
    migration = importlib.import_module("migrations.credits.0008_usage_rollups")
    for sql in migration._backfill_sql(True):
        harness.psql(sql, database.name)
    daily = importlib.import_module("migrations.credits.0011_usage_daily_rollups")
    harness.psql(daily.backfill_sql(True), database.name)
    rolled = time.monotonic()
    harness.psql(
        "VACUUM (ANALYZE) usage_records, ledger_entries, usage_rollups, usage_daily_rollups",
        database.name,
    )
    return {
        "records": records,
        "teams": len(teams),
        "big_team_records": big_count,
        "rollup_rows": database.count("usage_rollups"),
        "load_s": loaded - started,
        "rollups_s": rolled - loaded,
        "vacuum_s": time.monotonic() - rolled,
        "size": harness.psql(
            "SELECT pg_size_pretty(pg_total_relation_size('usage_records')) || ' records, ' || "
            "pg_size_pretty(pg_total_relation_size('ledger_entries')) || ' ledger, ' || "
            "pg_size_pretty(pg_total_relation_size('usage_rollups')) || ' rollups'",
            database.name,
        ),
    }


def _post(url: str, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        url + "/graphql",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def series_latency(server: harness.Server, team_ids: list[str], requests: int) -> dict[str, Any]:
    """`requests` 90-day daily series grouped by model, one after another, for teams
    chosen from `team_ids`; the range ends now (so its last hour is read from records)."""
    token = harness.token()
    rng = random.Random(7)
    samples: list[float] = []
    buckets = 0
    for _ in range(requests):
        now = datetime.now(UTC)
        variables = {
            "t": rng.choice(team_ids),
            "f": (now - timedelta(days=90)).replace(hour=0, minute=0, second=0).isoformat(),
            "to": now.isoformat(),
        }
        started = time.perf_counter()
        answer = _post(server.url, token, SERIES, variables)
        samples.append((time.perf_counter() - started) * 1000)
        buckets = max(buckets, len(answer["data"]["team"]["usage"]["buckets"]))
    return {
        "requests": requests,
        "p50_ms": statistics.median(samples),
        "p99_ms": _percentile(samples, 0.99),
        "max_ms": max(samples),
        "buckets": buckets,
    }


def export_timing(server: harness.Server, team_id: str) -> dict[str, Any]:
    """A year's usage export of `team_id`: time to the first data row, and to the end."""
    token = harness.token()
    now = datetime.now(UTC)
    variables = {"t": team_id, "f": (now - timedelta(days=366)).isoformat(), "to": now.isoformat()}
    link = _post(server.url, token, EXPORT, variables)["data"]["team"]["exportUrl"]
    started = time.perf_counter()
    first_row: float | None = None
    rows = -1  # the header
    size = 0
    with urllib.request.urlopen(link, timeout=600) as response:
        for line in response:
            size += len(line)
            rows += 1
            if rows == 1 and first_row is None:
                first_row = time.perf_counter() - started
    return {
        "first_row_s": first_row,
        "total_s": time.perf_counter() - started,
        "rows": rows,
        "mb": size / 1e6,
    }


def ingest_cost(
    database: harness.Database, teams: list[str], seconds: float, workers: int, rounds: int
) -> dict[str, Any]:
    """/v1/usage over the teams (events with a description and two dimensions, so each
    adds to four rollup rows), with rollups on and off in alternating runs."""
    token = harness.token()
    path = teams_file(teams)
    figures: dict[str, list[float]] = {"on": [], "off": []}
    errors = {"on": 0, "off": 0}
    try:
        for round_ in range(rounds):
            for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                env = harness.server_env(
                    database, USAGE_ROLLUPS="true" if mode == "on" else "false"
                )
                server = harness.Server(env, workers=workers)
                try:
                    harness.settle(database.name)
                    extra = {
                        "TEAMS_FILE": path,
                        "TOKEN": token,
                        "KEY_PREFIX": uuid.uuid4().hex[:10],
                        "DIMENSIONS": "1",
                    }
                    result = harness.wrk(
                        server.url + "/v1/usage", "v1_usage.lua", CLIENTS, seconds, extra
                    )
                finally:
                    server.stop()
                # Only answered events count: wrk's errors (timeouts, non-2xx) are reported.
                errors[mode] += result["errors"]
                figures[mode].append((result["requests"] - result["errors"]) / result["duration_s"])
    finally:
        os.unlink(path)
    on, off = statistics.median(figures["on"]), statistics.median(figures["off"])
    return {
        "runs": figures,
        "errors": errors,
        "on_per_s": on,
        "off_per_s": off,
        "cost_pct": (off - on) / off * 100 if off else 0.0,
        # What each event costs more, in server time per event at this concurrency.
        "extra_us_per_event": (1 / on - 1 / off) * 1e6 if on and off else 0.0,
    }


def loaded_teams(database: harness.Database) -> list[str]:
    """The teams of a database preloaded earlier, the big one first."""
    listing = harness.psql(
        "SELECT team_id FROM usage_rollups WHERE dimension = '' "
        "GROUP BY team_id ORDER BY sum(events) DESC",
        database.name,
    )
    return listing.split()


def run(
    database: harness.Database,
    *,
    quick: bool,
    seconds: float,
    workers: int,
    preloaded: bool = False,
) -> dict[str, Any]:
    """Each figure is printed as soon as it is measured. `preloaded`: the database was
    loaded by an earlier run (`--keep`, then `--database`)."""
    records, count = (QUICK_RECORDS, QUICK_TEAMS) if quick else (RECORDS, TEAMS)
    figures: dict[str, Any] = {}
    if preloaded:
        teams = loaded_teams(database)
        print(f"history: reusing {database.name}: {len(teams):,} teams with usage")
    else:
        teams = harness.create_teams(database, count)
        figures["preload"] = preload(database, teams, records)
        print_preload(figures["preload"])
    server = harness.Server(harness.server_env(database), workers=workers)
    try:
        requests = QUICK_SERIES_REQUESTS if quick else SERIES_REQUESTS
        series_latency(server, teams[:1], 5)  # warm the workers' connections
        for key, label, chosen in (
            ("series_big", "big team", teams[:1]),
            ("series_small", "small teams", teams[1:]),
        ):
            figures[key] = series_latency(server, chosen, requests)
            print_series(figures[key], label)
        figures["export"] = export_timing(server, teams[0])
        print_export(figures["export"])
    finally:
        server.stop()
    figures["ingest"] = ingest_cost(database, teams, seconds, workers, rounds=2)
    print_ingest(figures["ingest"])
    return figures


def print_preload(pre: dict[str, Any]) -> None:
    print(
        f"history: {pre['records']:,} records across {pre['teams']:,} teams (the big one "
        f"{pre['big_team_records']:,}), {pre['rollup_rows']:,} rollup rows; {pre['size']}; "
        f"loaded in {pre['load_s']:.0f} s, rollups {pre['rollups_s']:.0f} s",
        flush=True,
    )


def print_series(s: dict[str, Any], label: str) -> None:
    print(
        f"90-day daily series by model, {label}: p50 {s['p50_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms over {s['requests']} "
        f"requests (up to {s['buckets']} buckets)",
        flush=True,
    )


def print_export(e: dict[str, Any]) -> None:
    print(
        f"year's usage CSV of the big team: first row after {e['first_row_s']:.3f} s, "
        f"{e['rows']:,} rows ({e['mb']:.0f} MB) in {e['total_s']:.1f} s",
        flush=True,
    )


def print_ingest(i: dict[str, Any]) -> None:
    runs = {mode: [round(r) for r in values] for mode, values in i["runs"].items()}
    print(
        f"/v1/usage ({CLIENTS} clients, events with a description and 2 dimensions): "
        f"rollups on {i['on_per_s']:.0f}/s, off {i['off_per_s']:.0f}/s (medians of {runs}): "
        f"{i['cost_pct']:.1f}% fewer events/s, {i['extra_us_per_event']:.0f} us more per event; "
        f"errors {i['errors']}",
        flush=True,
    )
