"""Crash test: usage load at a real server on PostgreSQL, SIGKILLed mid-load and restarted.

    python scripts/crash_test.py [--duration 20] [--kills 2] [--workers 16] [--teams 8]

1. Creates its own database, migrates it, starts `python -m app serve` on a free port.
2. Signs up teams, grants them credits (some run out during the run, so rejections happen
   too), then drives `recordUsage` and `recordUsageBatch` from concurrent clients. Each
   event has its own idempotency key; like the metering gateway, a client whose request
   failed (the server died under it) retries the same event until it gets an answer.
3. Kills the server with SIGKILL `--kills` times at evenly spaced moments, restarting it
   each time, and lets the load run on.
4. Checks, with the server stopped: every event the clients saw accepted is in the ledger
   exactly once (its usage record, and ledger draws equal to its parts), no event is there
   twice, nothing is there that no client saw accepted, and `creditline audit` is clean.
   Then drops the database.

Prints the figures and exits 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.teams import tokens  # noqa: E402

SECRET = "crash-test-secret-" + "x" * 32
USAGE = """mutation($t: ID!, $a: Decimal!, $k: String!) {
  recordUsage(input: {teamId: $t, amount: $a, idempotencyKey: $k}) {
    usage { id fromFree fromPrepaid invoiced } errors { code } } }"""
BATCH = """mutation($events: [RecordUsageInput!]!) { recordUsageBatch(input: {events: $events}) {
  results { usage { id } errors { code } } errors { code } } }"""
GRANT = """mutation($t: ID!, $a: Decimal!, $k: CreditKind!) {
  grantCredits(input: {teamId: $t, amount: $a, kind: $k}) { errors { code } } }"""
# A connection that breaks mid-request: the answer is unknown, so the event is retried.
UNKNOWN = (httpx.TransportError, httpx.HTTPStatusError)


@dataclass
class Event:
    team_id: str
    key: str
    amount: str
    outcome: str | None = None  # "accepted", or the rejection's error code
    usage_id: str | None = None
    attempts: int = 0


@dataclass
class Stats:
    sent: int = 0
    answered: int = 0
    retried: int = 0
    failed_requests: int = 0
    kills: list[float] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[crash-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`python -m app serve` in its own process group, so SIGKILL takes all of it."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, within: float = 60.0) -> None:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", "serve", "--port", str(self.port),
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the server exited; see {self.log_path}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the server did not answer /healthz within {within}s")

    async def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def run_app(env: dict[str, str], *args: str) -> tuple[int, str]:
    """`python -m app ARGS`: exit status and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


class Load:
    def __init__(self, server: Server, operator_token: str, teams: list[str], seed: int) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {operator_token}"}
        self.teams = teams
        self.random = random.Random(seed)
        self.events: list[Event] = []
        self.stats = Stats()
        self.stopping = False
        self.up = asyncio.Event()
        self.up.set()

    def new_events(self, count: int) -> list[Event]:
        made = []
        for _ in range(count):
            cents = self.random.choice((1, 2, 5, 10, 25))
            event = Event(
                team_id=self.random.choice(self.teams),
                key=f"crash-{uuid.uuid4().hex}",
                amount=str(Decimal(cents) / 100 + Decimal("0.00001234")),
            )
            made.append(event)
        self.events.extend(made)
        return made

    async def worker(self, http: httpx.AsyncClient, batch: bool) -> None:
        while not self.stopping:
            events = self.new_events(10 if batch else 1)
            # Until it gets an answer: a request cut off by a crash is sent again, same keys.
            while True:
                await self.up.wait()
                for event in events:
                    event.attempts += 1
                self.stats.sent += len(events)
                try:
                    await (self._batch(http, events) if batch else self._one(http, events[0]))
                except UNKNOWN:
                    self.stats.failed_requests += 1
                    self.stats.retried += len(events)
                    await asyncio.sleep(0.05)
                    continue
                self.stats.answered += len(events)
                break

    async def _post(self, http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
        response = await http.post(
            f"{self.server.url}/graphql",
            json={"query": query, "variables": variables},
            headers=self.headers,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"top-level errors: {body['errors']}")
        return body["data"]

    async def _one(self, http: httpx.AsyncClient, event: Event) -> None:
        data = await self._post(
            http, USAGE, {"t": event.team_id, "a": event.amount, "k": event.key}
        )
        self._settle(event, data["recordUsage"])

    async def _batch(self, http: httpx.AsyncClient, events: list[Event]) -> None:
        payload = [
            {"teamId": e.team_id, "amount": e.amount, "idempotencyKey": e.key} for e in events
        ]
        data = await self._post(http, BATCH, {"events": payload})
        result = data["recordUsageBatch"]
        if result["errors"]:
            raise RuntimeError(f"batch refused: {result['errors']}")
        for event, answer in zip(events, result["results"], strict=True):
            self._settle(event, answer)

    @staticmethod
    def _settle(event: Event, answer: dict[str, Any]) -> None:
        if answer["usage"] is not None:
            usage_id = answer["usage"]["id"]
            if event.usage_id is not None and event.usage_id != usage_id:
                raise RuntimeError(f"{event.key}: a replay answered another usage record")
            event.outcome, event.usage_id = "accepted", usage_id
        else:
            event.outcome = answer["errors"][0]["code"]


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def setup_teams(server: Server, count: int) -> tuple[str, list[str]]:
    """Signs up an operator and `count` team admins; grants credits (half of the teams get
    little, so they run out and see rejections)."""
    operator = tokens.mint(
        SECRET, subject="crash:operator", email="ops@crash.example", operator=True
    )
    team_ids = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
        for i in range(count):
            token = tokens.mint(SECRET, subject=f"crash:user{i}", email=f"user{i}@crash.example")
            body = (
                await http.post(
                    "/graphql",
                    json={"query": "{ viewer { memberships { team { id } } } }"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).json()
            team_id = body["data"]["viewer"]["memberships"][0]["team"]["id"]
            team_ids.append(team_id)
            amounts = [("FREE", "5.00"), ("PREPAID", "3.00")] if i % 2 else [("FREE", "500.00")]
            for kind, amount in amounts:
                answer = (
                    await http.post(
                        "/graphql",
                        json={"query": GRANT, "variables": {"t": team_id, "a": amount, "k": kind}},
                        headers={"Authorization": f"Bearer {operator}"},
                    )
                ).json()
                assert answer["data"]["grantCredits"]["errors"] == [], answer
    return operator, team_ids


async def query(database_url: str, sql: str) -> list[dict[str, Any]]:
    """Rows of `sql` on the test's database (PostgreSQL or SQLite)."""
    if database_url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite://"))) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql)]
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def verify(
    database_url: str, load: Load, env: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The figures and every failed check."""
    problems: list[str] = []
    accepted = {e.key: e for e in load.events if e.outcome == "accepted"}
    unanswered = [e for e in load.events if e.outcome is None]
    rows = await query(
        database_url,
        "SELECT u.idempotency_key, CAST(u.id AS TEXT) AS id, u.amount, u.invoiced, "
        "COALESCE(-SUM(l.amount), 0) AS drawn, COUNT(l.id) AS entries "
        "FROM usage_records u LEFT JOIN ledger_entries l "
        "ON l.team_id = u.team_id AND l.usage_id = u.id AND l.kind = 'USAGE' "
        "WHERE u.idempotency_key LIKE 'crash-%' GROUP BY u.team_id, u.id",
    )
    keys = Counter(r["idempotency_key"] for r in rows)
    (orphans,) = await query(
        database_url,
        "SELECT COUNT(*) AS n FROM ledger_entries l WHERE l.kind = 'USAGE' AND NOT EXISTS "
        "(SELECT 1 FROM usage_records u WHERE u.id = l.usage_id)",
    )
    orphan_draws = int(orphans["n"])
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    by_key = {r["idempotency_key"]: r for r in rows}
    missing = [k for k in accepted if k not in by_key]
    unacknowledged = [k for k in by_key if k not in accepted]
    wrong_id = [k for k, e in accepted.items() if k in by_key and by_key[k]["id"] != e.usage_id]
    bad_draws = [
        r["idempotency_key"]
        for r in rows
        if int(r["drawn"]) != int(r["amount"]) - int(r["invoiced"])
    ]
    if unanswered:
        problems.append(f"{len(unanswered)} events never got an answer")
    if missing:
        problems.append(f"{len(missing)} acknowledged events are not in the ledger: {missing[:3]}")
    if duplicates:
        problems.append(f"{duplicates} events are in the ledger twice")
    if unacknowledged:
        problems.append(f"{len(unacknowledged)} recorded events no client saw accepted")
    if wrong_id:
        problems.append(f"{len(wrong_id)} events recorded under another id than acknowledged")
    if bad_draws:
        problems.append(
            f"{len(bad_draws)} usage records whose ledger draws differ: {bad_draws[:3]}"
        )
    if orphan_draws:
        problems.append(f"{orphan_draws} ledger draws without a usage record")
    status, audit = await run_app(env, "audit")
    if status != 0:
        problems.append("creditline audit found discrepancies:\n" + audit)
    rejected = Counter(e.outcome for e in load.events if e.outcome not in (None, "accepted"))
    figures = {
        "events": len(load.events),
        "acknowledged": len(accepted),
        "rejected": dict(rejected),
        "in_ledger": len(rows),
        "duplicates": duplicates,
        "missing": len(missing),
        "recorded_unacknowledged": len(unacknowledged),
        "requests_cut_by_kills": load.stats.failed_requests,
        "events_retried": load.stats.retried,
        "events_retried_and_accepted": sum(1 for e in accepted.values() if e.attempts > 1),
        "kills_at_seconds": [round(k, 1) for k in load.stats.kills],
        "audit": audit.strip().splitlines()[-1] if audit.strip() else "",
    }
    return figures, problems


async def run(args: argparse.Namespace) -> int:
    name = f"creditline_crash_{os.getpid()}_{int(time.time())}"
    base = args.pg_url.rstrip("/")
    admin_url, database_url = f"{base}/postgres", f"{base}/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="creditline-crash-"))
    if args.sqlite:
        database_url = f"sqlite://{workdir / 'crash.sqlite3'}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTH_JWT_SECRET": SECRET,
        "ENVIRONMENT": "test",
        "STRIPE_API_KEY": "sk_test_crash",
        # Nothing here talks to Stripe; an address that refuses at once if something did.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_WEBHOOK_SECRET": "whsec_crash",
        "BROKER_URL": "memory://",
    }
    log_path = Path(args.log or workdir / "server.log")
    log(f"database {database_url}; server log {log_path}")
    if not args.sqlite:
        await create_database(admin_url, name)
    server = Server(env, free_port(), log_path)
    passed = False
    try:
        status, output = await run_app(env, "migrate")
        if status != 0:
            raise RuntimeError(f"migrate failed: {output}")
        await server.start()
        operator, teams = await setup_teams(server, args.teams)
        load = Load(server, operator, teams, args.seed)
        limits = httpx.Limits(max_connections=args.workers, max_keepalive_connections=args.workers)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=limits) as http:
            started = time.monotonic()
            workers = [
                asyncio.create_task(load.worker(http, batch=(i % 4 == 3)))
                for i in range(args.workers)
            ]
            for k in range(args.kills):
                await asyncio.sleep(args.duration / (args.kills + 1))
                load.up.clear()
                await server.kill()
                load.stats.kills.append(time.monotonic() - started)
                acknowledged = sum(1 for e in load.events if e.outcome == "accepted")
                log(f"SIGKILL {k + 1} at {load.stats.kills[-1]:.1f}s ({acknowledged} acknowledged)")
                await server.start()
                load.up.set()
            await asyncio.sleep(args.duration / (args.kills + 1))
            load.stopping = True
            await asyncio.wait_for(asyncio.gather(*workers), timeout=120)
            elapsed = time.monotonic() - started
        await server.stop()
        figures, problems = await verify(database_url, load, env)
        figures["seconds"] = round(elapsed, 1)
        figures["events_per_second"] = round(figures["events"] / elapsed)
        print(json.dumps(figures, indent=2))
        if args.report:
            report = json.dumps({**figures, "problems": problems})
            Path(args.report).write_text(report)  # noqa: ASYNC240 - a small file, once
        log(
            f"events acknowledged: {figures['acknowledged']}, in ledger: {figures['in_ledger']}, "
            f"duplicates: {figures['duplicates']}"
        )
        for problem in problems:
            log(f"FAIL: {problem}")
        if not problems:
            log("PASS: every acknowledged event is in the ledger exactly once; audit clean")
            passed = True
        return 1 if problems else 0
    finally:
        await server.stop()
        if not args.keep_db:
            if not args.sqlite:
                await drop_database(admin_url, name)
            if passed:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                log(f"kept {workdir} (server log) for a look")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--workers", type=int, default=16, help="concurrent clients")
    parser.add_argument("--teams", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-url", default=os.environ.get("CRASH_PG_URL", "postgres://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--log", help="server log file (default under /tmp)")
    parser.add_argument("--report", help="also write the figures to this JSON file")
    parser.add_argument("--keep-db", action="store_true", help="leave the database for a look")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
