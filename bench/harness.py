"""Pieces every benchmark uses: a throw-away PostgreSQL database, a real server
process, teams with credits, wrk and pgbench runs."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "lua"
PGBENCH = Path(__file__).resolve().parent / "pgbench"
# BENCH_PG_HOST / BENCH_PG_PORT point the harness at another server, e.g. the local Citus
# coordinator (docs/scaling.md, "Measured": `BENCH_PG_PORT=9700 ... --database NAME`).
PG = {
    "host": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
    "port": os.environ.get("BENCH_PG_PORT", "5432"),
    "user": "postgres",
}
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
# Several workers share live balances through Redis, as they must when deployed.
REDIS_URL = "redis://127.0.0.1:6379/15"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", database, "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def settle(database: str) -> None:
    """Flushes the previous run's writes (a checkpoint), clears out its dead rows and
    vacuums the tables it inserted into, so each measured run starts alike instead of
    paying for the one before it: on a new database, autovacuum otherwise starts on the
    usage and ledger tables in the middle of a run (1,000 teams at 64 clients measured
    3,750, 3,300, 2,500 and 2,700 events/s in four runs in a row)."""
    psql("CHECKPOINT", database)
    psql(
        "VACUUM (ANALYZE) credit_accounts, credit_grants, usage_records, ledger_entries, teams",
        database,
    )


@dataclass
class Database:
    name: str

    @property
    def url(self) -> str:
        return f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{self.name}"

    @classmethod
    def create(cls) -> Database:
        name = f"creditline_bench_{os.getpid()}_{int(time.time())}"
        psql(f'CREATE DATABASE "{name}"')
        return cls(name)

    def drop(self) -> None:
        psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def count(self, table: str) -> int:
        return int(psql(f"SELECT count(*) FROM {table}", self.name))


def server_env(database: Database, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database.url,
        AUTH_JWT_SECRET=JWT_SECRET,
        ENVIRONMENT="test",
        DATABASE_POOL_SIZE="10",  # leaves room for pgbench's 64 clients (max_connections 100)
    )
    env.update(extra)
    return env


class Server:
    """`python -m app serve` (or any ASGI app under uvicorn) in a child process."""

    def __init__(self, env: dict[str, str], workers: int = 1, app: str | None = None) -> None:
        self.port = free_port()
        if app is None:
            command = [sys.executable, "-m", "app", "serve", "--port", str(self.port)]
            command += ["--workers", str(workers)]
        else:
            command = [sys.executable, "-m", "uvicorn", app, "--port", str(self.port)]
            command += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self._wait("/healthz" if app is None else "/")
        except BaseException:
            self.stop()  # a server that did not come up is not left running
            raise

    def _wait(self, path: str) -> None:
        # 60 s: two workers importing the app on a loaded two-core machine took over 30.
        # BENCH_SERVER_START_SECONDS: more, e.g. on the local Citus cluster while the
        # machine is busy (77 s measured there at load average 8).
        limit = float(os.environ.get("BENCH_SERVER_START_SECONDS", "60"))
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"server exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as response:
                    if response.status < 500:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start within {limit:.0f} s")

    def memory_mb(self) -> float:
        """Resident memory of the server and its worker children."""
        pids = [str(self.process.pid)]
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        pids += children
        out = subprocess.run(
            ["ps", "-o", "rss=", "-p", ",".join(pids)], capture_output=True, text=True
        )
        return sum(int(x) for x in out.stdout.split()) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def token(email: str = "bench-gateway@example.com", operator: bool = True) -> str:
    sys.path.insert(0, str(ROOT))
    from app.teams import tokens

    return tokens.mint(JWT_SECRET, subject=f"bench:{email}", email=email, operator=operator)


def migrate(database: Database) -> None:
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=server_env(database),
        check=True,
        capture_output=True,
    )


async def _create_teams(url: str, count: int, dollars: int) -> list[str]:
    from app import db
    from app.config import Settings
    from app.credits import service as credits
    from app.credits.models import CreditAccount, CreditKind
    from app.kit import clock
    from app.kit.money import UNITS_PER_DOLLAR
    from app.teams.models import Team

    await db.init_db(Settings(database_url=url, auth_jwt_secret=JWT_SECRET))
    try:
        now = clock.now()
        teams = [Team(id=uuid.uuid4(), name=f"bench {i}", created_at=now) for i in range(count)]
        await Team.bulk_create(teams)
        await CreditAccount.bulk_create(
            [CreditAccount(team_id=t.id, updated_at=now) for t in teams]
        )
        for team in teams:
            await credits.grant_credits(team.id, CreditKind.PREPAID, dollars * UNITS_PER_DOLLAR)
        return [str(t.id) for t in teams]
    finally:
        await db.close_db()


def create_teams(database: Database, count: int, dollars: int = 1_000_000) -> list[str]:
    return asyncio.run(_create_teams(database.url, count, dollars))


def audit(database: Database) -> list[str]:
    """The ledger invariants on the benchmark's database (`creditline audit`)."""
    result = subprocess.run(
        [sys.executable, "-m", "app", "audit"],
        cwd=ROOT,
        env=server_env(database),
        capture_output=True,
        text=True,
    )
    if result.returncode == 0:
        return []
    return (result.stdout + result.stderr).strip().splitlines() or ["audit failed"]


_RESULT = re.compile(
    r"RESULT requests=(\d+) errors=(\d+) p50=([\d.]+) p95=([\d.]+) p99=([\d.]+) duration_us=(\d+)"
)


def wrk(
    url: str, script: str, connections: int, seconds: float, env: dict[str, str]
) -> dict[str, Any]:
    """Runs wrk; returns requests, errors, requests/s and p50/p95/p99 latency in ms."""
    threads = max(1, min(2, connections))
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA / script),
            url,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    match = _RESULT.search(result.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result: {result.stdout}\n{result.stderr}")
    requests, errors, p50, p95, p99, duration_us = match.groups()
    duration = int(duration_us) / 1e6
    return {
        "requests": int(requests),
        "errors": int(errors),
        "duration_s": duration,
        "rps": int(requests) / duration,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }


def _pgbench(database: Database, clients: int, seconds: int, script: Path, *options: str) -> float:
    """Runs a pgbench script; returns its transactions/s."""
    result = subprocess.run(
        [
            "pgbench",
            "-h",
            PG["host"],
            "-p",
            PG["port"],
            "-U",
            PG["user"],
            "-n",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(seconds),
            *options,
            "-f",
            str(script),
            database.name,
        ],
        capture_output=True,
        text=True,
    )
    match = re.search(r"tps = ([\d.]+)", result.stdout)
    if result.returncode != 0 or match is None:
        # BENCH_PGBENCH_OPTIONAL=1: a ceiling the database refuses (on Citus, the batch
        # script's FOR UPDATE over many teams' shards) is reported as nan, not fatal.
        if os.environ.get("BENCH_PGBENCH_OPTIONAL") == "1":
            print(f"pgbench ceiling not measured: {result.stderr.strip()[-300:]}")
            return float("nan")
        raise RuntimeError(f"pgbench failed: {result.stdout}\n{result.stderr}")
    return float(match.group(1))


def pgbench_update(database: Database, clients: int, seconds: int) -> float:
    """PostgreSQL's own one-row UPDATE ceiling on the same database: transactions/s."""
    psql(
        "CREATE TABLE IF NOT EXISTS bench_hot_row (id int PRIMARY KEY, n bigint NOT NULL);"
        "INSERT INTO bench_hot_row VALUES (1, 0) ON CONFLICT DO NOTHING",
        database.name,
    )
    script = Path(f"/tmp/creditline-pgbench-{os.getpid()}.sql")
    script.write_text("UPDATE bench_hot_row SET n = n + 1 WHERE id = 1;\n")
    try:
        return _pgbench(database, clients, seconds, script)
    finally:
        script.unlink(missing_ok=True)


def pgbench_batch(
    database: Database, clients: int, seconds: int, events_per_transaction: int
) -> float:
    """PostgreSQL's own ceiling for batch ingestion on the same database, in events/s:
    `PGBENCH / "batch_transaction.sql"`, one transaction per `events_per_transaction` teams
    (as the service splits a batch), over the teams that have exactly one grant, prepaid
    (as `create_teams` makes them)."""
    ranges = "bench_batch_ranges"  # the name the script reads
    psql(
        f"DROP TABLE IF EXISTS {ranges};"
        f"CREATE TABLE {ranges} AS SELECT r, array_agg(team_id ORDER BY team_id) AS teams,"
        " array_agg(grant_id ORDER BY team_id) AS grants FROM ("
        "  SELECT team_id, id AS grant_id,"
        f"  (row_number() OVER (ORDER BY team_id) - 1) / {events_per_transaction} AS r"
        "  FROM credit_grants WHERE kind = 'PREPAID' AND team_id IN ("
        "    SELECT team_id FROM credit_grants GROUP BY team_id HAVING count(*) = 1)"
        f") AS s GROUP BY r HAVING count(*) = {events_per_transaction};"
        f"ALTER TABLE {ranges} ADD PRIMARY KEY (r); ANALYZE {ranges}",
        database.name,
    )
    try:
        count = int(psql(f"SELECT count(*) FROM {ranges}", database.name))
        if count == 0:
            raise RuntimeError("the batch ceiling needs teams with one prepaid grant each")
        script = PGBENCH / "batch_transaction.sql"
        options = ("-M", "prepared", "-D", f"last_range={count - 1}")
        tps = _pgbench(database, clients, seconds, script, *options)
    finally:
        psql(f"DROP TABLE IF EXISTS {ranges}", database.name)
    return tps * events_per_transaction


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench", "psql") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"bench needs {', '.join(missing)} (scripts/bench installs them)")


class EventRate:
    """Usage events committed per second while a run goes on, read from the ledger's id
    sequence once a second (each event on a team with one prepaid grant writes one
    ledger entry; reading a sequence scans nothing)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _value(self) -> int:
        return int(psql("SELECT last_value FROM ledger_entries_id_seq", self.database.name))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._value()))
            self._stop.wait(1.0)

    def __enter__(self) -> EventRate:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def per_second(self) -> list[float]:
        """Events per second between consecutive samples."""
        pairs = zip(self.samples, self.samples[1:], strict=False)
        return [(b[1] - a[1]) / (b[0] - a[0]) for a, b in pairs if b[0] > a[0]]

    def first(self, seconds: int) -> float:
        """Mean events/s over the run's first `seconds`."""
        rates = self.per_second()[:seconds]
        return sum(rates) / len(rates) if rates else 0.0

    def last(self, seconds: int) -> float:
        """Mean events/s over the run's last `seconds`."""
        rates = self.per_second()[-seconds:]
        return sum(rates) / len(rates) if rates else 0.0


def seq_scans(database: Database, tables: tuple[str, ...]) -> dict[str, int]:
    """Sequential scans PostgreSQL has counted on each table (pg_stat_user_tables)."""
    names = ",".join(f"'{t}'" for t in tables)
    rows = psql(
        f"SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname IN ({names})",
        database.name,
    )
    found = dict(line.split("|") for line in rows.splitlines() if line)
    return {t: int(found.get(t, 0)) for t in tables}


def preload_usage(database: Database, team_id: str, records: int, amount_units: int) -> None:
    """`records` past usage records of `team_id`, each drawn from its prepaid grant, with
    time-ordered (UUIDv7-shaped) ids as the service makes them, oldest first."""
    grant = psql(
        f"SELECT id FROM credit_grants WHERE team_id = '{team_id}' AND kind = 'PREPAID'",
        database.name,
    )
    total = records * amount_units
    psql(
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
          SELECT id, '{team_id}', 'preload-' || i, {amount_units}, 0, 0, {amount_units}, 0,
                 NULL, ts, false, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM'), ts
          FROM preload ORDER BY i;
        INSERT INTO ledger_entries (kind, amount, created_at, grant_id, team_id, usage_id)
          SELECT 'USAGE', -{amount_units}, ts, '{grant}', '{team_id}', id FROM preload ORDER BY i;
        UPDATE credit_grants SET remaining = remaining - {total} WHERE id = '{grant}';
        UPDATE credit_accounts SET prepaid = prepaid - {total} WHERE team_id = '{team_id}';
        COMMIT;
        """,
        database.name,
    )
    psql("VACUUM (ANALYZE) usage_records, ledger_entries", database.name)


def isolate_team(database: Database, team_id: str) -> dict[str, Any]:
    """Citus only: moves the team's rows of every co-located table to a new shard of
    their own; returns the new shard and the seconds the move took."""
    started = time.monotonic()
    shard = psql(
        f"SELECT isolate_tenant_to_new_shard('teams', '{team_id}'::uuid, 'CASCADE', "
        "shard_transfer_mode => 'block_writes')",
        database.name,
    )
    return {"shard": int(shard), "seconds": time.monotonic() - started}
