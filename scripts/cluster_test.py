"""Cluster test: three replicas behind HAProxy sharing PostgreSQL and Redis.

    python scripts/cluster_test.py [--duration 12] [--clients 24] [--team-limit 60]

Each replica is `python -m app serve` (one worker) in a process group of its own, on a
loopback port of its own (no network namespaces: the replicas reach PostgreSQL and Redis
on the host's loopback). HAProxy (Debian's package, `scripts/cluster-test` installs it)
balances them round robin with health checks on /readyz. What it shows, in order:

1. migrate: three `python -m app migrate` started at once on a fresh, empty database all
   exit 0, and the database holds one set of tables, each migration recorded once.
2. load and a kill: clients post /v1/usage through HAProxy, each event with its own
   idempotency key, retrying the same event on a cut connection or a 5xx until it gets
   an answer; balance subscriptions (graphql-transport-ws) are open through HAProxy.
   Mid-load the replica serving one subscriber is SIGKILLed. Its subscribers reconnect
   (HAProxy sends them to a live replica) and receive later balances; every event a
   client saw accepted is in the ledger exactly once; `creditline audit` is clean.
3. a cluster-wide rate limit: with RATE_LIMIT_TEAM_PER_MINUTE=N, 3N mutations for one
   team spread over the three replicas admit N (within 5%).
4. the month's close: the replicas restart with SCHEDULER=on and a clock moved past
   the month's end (Debian's `faketime`); the month closes once, with exactly one
   MONTHLY_USAGE invoice per team that used its invoiced limit.

Creates and drops its own database, stops every process it started, even on failure.
Prints what it checked and the figures; exits 0 when every check holds, 1 otherwise.
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
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import db  # noqa: E402
from app.teams import tokens  # noqa: E402

SECRET = "cluster-test-secret-" + "x" * 32
WEBHOOK_SECRET = "whsec_cluster_" + "0" * 24
# Tokens outlive the moved clock of the month's close (PyJWT reads the wall clock).
TOKEN_TTL = timedelta(days=90)
GRANT = """mutation($t: ID!, $a: Decimal!, $k: CreditKind!) {
  grantCredits(input: {teamId: $t, amount: $a, kind: $k}) { errors { code } } }"""
ADD_CARD = """mutation($t: ID!) {
  addPaymentMethod(input: {teamId: $t, stripePaymentMethodId: "pm_card_visa", makeDefault: true}) {
    errors { code message } } }"""
SET_LIMIT = """mutation($t: ID!, $l: Decimal!) {
  setInvoicedSpendingLimit(input: {teamId: $t, limit: $l}) { errors { code } } }"""
TOTAL = "query($t: ID!) { team(id: $t) { credits { total } } }"
SUBSCRIBE = """subscription($t: ID!) { creditsUpdated(teamId: $t) { total } }"""
RETRY_STATUS = {500, 502, 503, 504}
WAIT = 60.0


def log(message: str) -> None:
    print(f"[cluster-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(check: Any, within: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


# util-linux's setpriv: the kernel SIGKILLs the child when the test's process dies, so even
# a test killed with SIGKILL leaves no replica, proxy or emulator behind.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"]


class Process:
    """A child in its own process group, so one signal reaches all of it; output to a log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *DIE_WITH_PARENT,
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            await self.kill()


class Replica(Process):
    def __init__(self, name: str, port: int, env: dict[str, str], workdir: Path) -> None:
        self.port = port
        super().__init__(
            name,
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            env,
            workdir / f"{name}.log",
        )

    async def start_ready(
        self, prefix: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        argv = [sys.executable, "-m", "app", "serve", "--port", str(self.port)]
        # faketime forks the command: it too must die with its parent (faketime).
        self.argv = [*prefix, *DIE_WITH_PARENT, *argv] if prefix else argv
        if env is not None:
            self.env = env
        await self.start()

        async def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=2.0) as http:
                    return (
                        await http.get(f"http://127.0.0.1:{self.port}/readyz")
                    ).status_code == 200
            return False

        await wait_until(ready, WAIT, f"{self.name} to be ready")


HAPROXY_CONFIG = """global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    # A connection refused by a dead replica is tried again on another.
    retries 3
    option redispatch 1
frontend creditline
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # Which replica answered: the test needs it, a real deployment may drop it.
    http-response set-header X-Served-By %[srv_name]
{servers}
"""


def haproxy_config(port: int, replicas: list[Replica]) -> str:
    servers = "\n".join(
        f"    server {r.name} 127.0.0.1:{r.port} check inter 300ms fall 2 rise 1" for r in replicas
    )
    return HAPROXY_CONFIG.format(port=port, servers=servers)


async def run_app(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


# --- the checks ------------------------------------------------------------------------


@dataclass
class Report:
    checks: list[tuple[bool, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, what: str) -> None:
        self.checks.append((ok, what))
        log(("PASS: " if ok else "FAIL: ") + what)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)


async def check_migrate(env: dict[str, str], database_url: str, report: Report) -> None:
    """Three migrations at once on an empty database."""
    started = time.monotonic()
    results = await asyncio.gather(*(run_app(env, "migrate") for _ in range(3)))
    seconds = time.monotonic() - started
    statuses = [status for status, _ in results]
    outputs = [out.strip().splitlines()[-1] if out.strip() else "" for _, out in results]
    report.check(statuses == [0, 0, 0], f"three concurrent migrate exit {statuses}: {outputs}")
    applied = [
        f"{r['app']}.{r['name']}"
        for r in await query(database_url, f"SELECT app, name FROM {db.MIGRATIONS_TABLE}")
    ]
    twice = [name for name, n in Counter(applied).items() if n > 1]
    expected = db.disk_migrations()
    report.check(
        not twice and set(applied) == expected,
        f"each of the {len(expected)} migrations recorded once ({len(applied)} rows)",
    )
    tables = await query(
        database_url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    schemas = sorted({t["table_schema"] for t in tables})
    report.check(schemas == ["public"], f"one set of {len(tables)} tables, schemas {schemas}")
    report.figures["migrate_seconds"] = round(seconds, 1)


@dataclass
class Event:
    team_id: str
    key: str
    amount: str
    outcome: str | None = None
    usage_id: str | None = None
    attempts: int = 0


class Load:
    """The metering gateway: /v1/usage through HAProxy, each event retried until answered."""

    def __init__(self, url: str, token: str, teams: list[str], seed: int) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.teams = teams
        self.random = random.Random(seed)
        self.events: list[Event] = []
        self.stopping = False
        self.retries = 0
        self.served_by: Counter[str] = Counter()

    async def worker(self, http: httpx.AsyncClient) -> None:
        while not self.stopping:
            cents = self.random.choice((1, 2, 5, 10, 25))
            event = Event(
                team_id=self.random.choice(self.teams),
                key=f"cluster-{uuid.uuid4().hex}",
                amount=str(Decimal(cents) / 100 + Decimal("0.00001234")),
            )
            self.events.append(event)
            await self.send(http, event)

    async def send(self, http: httpx.AsyncClient, event: Event) -> None:
        body = {"teamId": event.team_id, "amount": event.amount, "idempotencyKey": event.key}
        while True:
            event.attempts += 1
            try:
                response = await http.post(f"{self.url}/v1/usage", json=body, headers=self.headers)
            except httpx.TransportError:
                response = None
            if response is None or response.status_code in RETRY_STATUS:
                self.retries += 1
                await asyncio.sleep(0.05)
                continue
            self.served_by[response.headers.get("x-served-by", "?")] += 1
            answer = response.json()
            if response.status_code == 200:
                usage_id = answer["usage"]["id"]
                if event.usage_id not in (None, usage_id):
                    raise RuntimeError(f"{event.key}: a replay answered another record")
                event.outcome, event.usage_id = "accepted", usage_id
            else:
                event.outcome = answer["error"]["code"]
            return


@dataclass
class Subscriber:
    """A balance widget: follows one team's creditsUpdated, reconnecting when cut off."""

    team_id: str
    token: str
    served_by: list[str] = field(default_factory=list)
    totals: list[str] = field(default_factory=list)
    drops: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, ws_url: str) -> None:
        while True:
            try:
                async with websockets.connect(
                    ws_url,
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    open_timeout=10,
                    ping_interval=None,
                ) as conn:
                    assert conn.response is not None
                    served = conn.response.headers.get("x-served-by", "?")
                    await conn.send(
                        json.dumps(
                            {
                                "type": "connection_init",
                                "payload": {"Authorization": f"Bearer {self.token}"},
                            }
                        )
                    )
                    await conn.send(
                        json.dumps(
                            {
                                "id": "1",
                                "type": "subscribe",
                                "payload": {"query": SUBSCRIBE, "variables": {"t": self.team_id}},
                            }
                        )
                    )
                    self.served_by.append(served)
                    async for raw in conn:
                        message = json.loads(raw)
                        if message["type"] == "ping":
                            await conn.send(json.dumps({"type": "pong"}))
                        elif message["type"] == "next":
                            self.totals.append(
                                message["payload"]["data"]["creditsUpdated"]["total"]
                            )
                            self.changed.set()
                        elif message["type"] in ("error", "complete"):
                            raise RuntimeError(f"subscription ended: {message}")
            except (OSError, TimeoutError, WebSocketException, InvalidHandshake, InvalidStatus):
                pass
            self.drops += 1
            await asyncio.sleep(0.2)

    async def until(self, total: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while not (self.totals and Decimal(self.totals[-1]) == Decimal(total)):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def graphql(self, query_: str, variables: dict[str, Any], token: str) -> Any:
        for _ in range(50):
            try:
                response = await self.http.post(
                    "/graphql",
                    json={"query": query_, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code in RETRY_STATUS:
                await asyncio.sleep(0.1)
                continue
            body = response.json()
            if body.get("errors"):
                raise RuntimeError(f"top-level errors: {body['errors']}")
            return body["data"], response.headers.get("x-served-by", "?")
        raise RuntimeError("no replica answered")

    async def sign_up(self, name: str) -> tuple[str, str]:
        """A user's token and their personal team (made on first sight)."""
        token = tokens.mint(
            SECRET, subject=f"cluster:{name}", email=f"{name}@cluster.example", ttl=TOKEN_TTL
        )
        data, _ = await self.graphql("{ viewer { memberships { team { id } } } }", {}, token)
        return token, data["viewer"]["memberships"][0]["team"]["id"]

    async def total(self, team_id: str, token: str) -> str:
        data, _ = await self.graphql(TOTAL, {"t": team_id}, token)
        return str(data["team"]["credits"]["total"])


async def check_ledger(database_url: str, load: Load, env: dict[str, str], report: Report) -> None:
    accepted = {e.key: e for e in load.events if e.outcome == "accepted"}
    unanswered = [e for e in load.events if e.outcome is None]
    rows = await query(
        database_url,
        "SELECT u.idempotency_key, CAST(u.id AS TEXT) AS id, u.amount, u.invoiced, "
        "COALESCE(-SUM(l.amount), 0) AS drawn "
        "FROM usage_records u LEFT JOIN ledger_entries l "
        "ON l.team_id = u.team_id AND l.usage_id = u.id AND l.kind = 'USAGE' "
        "WHERE u.idempotency_key LIKE 'cluster-%' GROUP BY u.team_id, u.id",
    )
    keys = Counter(r["idempotency_key"] for r in rows)
    by_key = {r["idempotency_key"]: r for r in rows}
    missing = [k for k in accepted if k not in by_key]
    twice = [k for k, n in keys.items() if n > 1]
    unseen = [k for k in by_key if k not in accepted]
    wrong = [k for k, e in accepted.items() if k in by_key and by_key[k]["id"] != e.usage_id]
    bad_draws = [
        r["idempotency_key"]
        for r in rows
        if int(r["drawn"]) != int(r["amount"]) - int(r["invoiced"])
    ]
    report.check(not unanswered, f"every event got an answer ({len(unanswered)} did not)")
    report.check(
        not missing and not twice and not wrong,
        f"each of the {len(accepted)} acknowledged events is in the ledger exactly once "
        f"(missing {len(missing)}, twice {len(twice)}, other id {len(wrong)})",
    )
    report.check(not unseen, f"nothing recorded that no client saw accepted ({len(unseen)})")
    report.check(not bad_draws, f"ledger draws match every usage record ({len(bad_draws)} off)")
    status, audit = await run_app(env, "audit")
    last = audit.strip().splitlines()[-1] if audit.strip() else ""
    report.check(status == 0, f"creditline audit clean: {last}")
    report.figures.update(
        events=len(load.events),
        acknowledged=len(accepted),
        rejected=dict(
            Counter(e.outcome for e in load.events if e.outcome not in (None, "accepted"))
        ),
        requests_retried=load.retries,
        events_retried_and_accepted=sum(1 for e in accepted.values() if e.attempts > 1),
        answers_by_replica=dict(load.served_by),
    )


async def check_rate_limit(api: Api, limit: int, report: Report) -> None:
    """3N mutations for one team, spread over the replicas: N admitted."""
    token, team_id = await api.sign_up(f"limited-{uuid.uuid4().hex[:8]}")
    sem = asyncio.Semaphore(16)

    async def one() -> tuple[bool, str]:
        async with sem:
            data, served = await api.graphql(SET_LIMIT, {"t": team_id, "l": "0"}, token)
        errors = data["setInvoicedSpendingLimit"]["errors"]
        if errors and errors != [{"code": "RATE_LIMITED"}]:
            raise RuntimeError(f"unexpected answer {errors}")
        return not errors, served

    started = time.monotonic()
    answers = await asyncio.gather(*(one() for _ in range(3 * limit)))
    seconds = time.monotonic() - started
    admitted = sum(1 for ok, _ in answers if ok)
    by_replica = Counter(served for ok, served in answers if ok)
    report.check(
        abs(admitted - limit) <= max(1, limit * 5 // 100) and len(by_replica) == 3,
        f"team limit {limit}/min: {admitted} of {3 * limit} admitted in {seconds:.1f}s, "
        f"by replica {dict(sorted(by_replica.items()))}",
    )
    report.figures["rate_limit"] = {
        "limit_per_minute": limit,
        "sent": 3 * limit,
        "admitted": admitted,
        "admitted_by_replica": dict(by_replica),
        "seconds": round(seconds, 1),
    }


async def check_month_close(
    replicas: list[Replica],
    env: dict[str, str],
    database_url: str,
    invoiced_teams: list[str],
    report: Report,
) -> None:
    """Restarts the replicas with the schedulers on, the clock past the month's end."""
    now = datetime.now(UTC)
    period = now.strftime("%Y-%m")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    # Past the scheduler's close delay (5 minutes after midnight).
    moved = next_month + timedelta(minutes=6)
    for replica in replicas:
        await replica.stop()
    scheduled = {**env, "SCHEDULER": "on", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    prefix = ["faketime", "-f", "@" + moved.strftime("%Y-%m-%d %H:%M:%S")]
    await asyncio.gather(*(r.start_ready(prefix, scheduled) for r in replicas))
    log(
        f"three replicas with SCHEDULER=on at {moved:%Y-%m-%d %H:%M} UTC (faketime); "
        f"closing {period}"
    )

    async def completed() -> bool:
        rows = await query(
            database_url,
            "SELECT completed_at FROM period_closes WHERE period = $1",
            period,
        )
        return bool(rows) and rows[0]["completed_at"] is not None

    started = time.monotonic()
    await wait_until(completed, 90, f"{period} to close", every=0.5)
    seconds = time.monotonic() - started
    # Each scheduler's first pass comes 1 to 5 s after start: let every one have had it.
    await asyncio.sleep(6)
    invoices = await query(
        database_url,
        "SELECT CAST(team_id AS TEXT) AS team_id, status FROM invoices "
        "WHERE kind = 'MONTHLY_USAGE' AND period = $1",
        period,
    )
    per_team = Counter(i["team_id"] for i in invoices)
    expected = set(invoiced_teams)
    report.check(
        set(per_team) == expected and all(n == 1 for n in per_team.values()),
        f"{period} closed once: one MONTHLY_USAGE invoice for each of the {len(expected)} "
        f"teams with invoiced usage ({len(invoices)} invoices, "
        f"{dict(Counter(i['status'] for i in invoices))})",
    )
    closes = [
        sum(1 for line in r.log_path.read_text().splitlines() if "scheduler.closed" in line)
        for r in replicas
    ]
    report.check(sum(closes) == 1, f"one close among the three schedulers (by replica: {closes})")
    report.figures["month_close"] = {
        "period": period,
        "seconds_to_close": round(seconds, 1),
        "invoices": len(invoices),
        "closes_by_replica": closes,
    }


# --- the run ---------------------------------------------------------------------------


async def setup(api: Api, operator: str, count: int) -> tuple[list[str], dict[str, str], list[str]]:
    """Teams with credits; half of them also with a card and an invoiced limit, so that
    their usage runs past their credits into the month's invoice."""
    teams, team_tokens, invoiced = [], {}, []
    for i in range(count):
        token, team_id = await api.sign_up(f"user{i}-{uuid.uuid4().hex[:6]}")
        teams.append(team_id)
        team_tokens[team_id] = token
        data, _ = await api.graphql(GRANT, {"t": team_id, "a": "3.00", "k": "FREE"}, operator)
        assert data["grantCredits"]["errors"] == [], data
        if i % 2 == 0:
            data, _ = await api.graphql(ADD_CARD, {"t": team_id}, token)
            assert data["addPaymentMethod"]["errors"] == [], data
            data, _ = await api.graphql(SET_LIMIT, {"t": team_id, "l": "1000"}, token)
            assert data["setInvoicedSpendingLimit"]["errors"] == [], data
            invoiced.append(team_id)
    return teams, team_tokens, invoiced


async def run(args: argparse.Namespace) -> int:
    for tool in ("haproxy", "faketime", "setpriv"):
        if shutil.which(tool) is None:
            log(f"FATAL: {tool} is not installed (scripts/cluster-test installs it)")
            return 1
    name = f"{args.db_prefix}_{os.getpid()}_{int(time.time())}"
    base = args.pg_url.rstrip("/")
    admin_url, database_url = f"{base}/postgres", f"{base}/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="creditline-cluster-"))
    stripe_port, proxy_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATABASE_POOL_SIZE": "8",
        "AUTH_JWT_SECRET": SECRET,
        "ENVIRONMENT": "test",
        "BROKER_URL": args.redis_url,
        "RATE_LIMIT_REDIS_PREFIX": f"cluster-test-{uuid.uuid4().hex}",
        "RATE_LIMIT_TEAM_PER_MINUTE": str(args.team_limit),
        "RATE_LIMIT_USER_PER_MINUTE": "100000",
        "RATE_LIMIT_OPERATOR_PER_MINUTE": "100000000",
        "STRIPE_API_KEY": "sk_test_cluster",
        "STRIPE_API_BASE": f"http://127.0.0.1:{stripe_port}",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SCHEDULER": "off",
    }
    env.pop("TEST_DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    url = f"http://127.0.0.1:{proxy_port}"
    replicas = [Replica(f"replica{i + 1}", free_port(), env, workdir) for i in range(3)]
    emulator = Process(
        "stripe",
        [
            sys.executable,
            "-m",
            "app.payments.emulator",
            "--port",
            str(stripe_port),
            "--webhook-url",
            f"{url}/webhooks/stripe",
            "--webhook-secret",
            WEBHOOK_SECRET,
        ],
        env,
        workdir / "stripe.log",
    )
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(proxy_port, replicas))
    proxy = Process("haproxy", ["haproxy", "-db", "-f", str(config)], env, workdir / "haproxy.log")
    report = Report()
    followers: list[asyncio.Task[None]] = []
    # SIGTERM or Ctrl-C: the run is cancelled, and `finally` below still stops and drops all.
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    log(f"database {name}; logs under {workdir}")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    started = time.monotonic()
    try:
        await check_migrate(env, database_url, report)
        await emulator.start()
        await wait_until(
            lambda: _async(
                emulator.log_path.exists() and "localstripe" in emulator.log_path.read_text()
            ),
            WAIT,
            "the Stripe emulator",
        )
        await asyncio.gather(*(r.start_ready() for r in replicas))
        await proxy.start()
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            await wait_until(lambda: _ok(http, "/readyz"), WAIT, "HAProxy")
            api = Api(http)
            operator = tokens.mint(
                SECRET,
                subject="cluster:operator",
                email="ops@cluster.example",
                operator=True,
                ttl=TOKEN_TTL,
            )
            teams, team_tokens, invoiced = await setup(api, operator, args.teams)
            log(f"{len(teams)} teams ({len(invoiced)} with a card and an invoiced limit)")

            subscribers = [Subscriber(t, team_tokens[t]) for t in teams[: args.subscribers]]
            ws_url = f"ws://127.0.0.1:{proxy_port}/graphql"
            followers = [asyncio.create_task(s.follow(ws_url)) for s in subscribers]
            await wait_until(
                lambda: _async(all(s.totals for s in subscribers)),
                WAIT,
                "every subscriber's first balance",
            )
            victim_name = subscribers[0].served_by[-1]
            victim = next(r for r in replicas if r.name == victim_name)
            cut_off = [s for s in subscribers if s.served_by[-1] == victim_name]
            log(
                f"{len(subscribers)} subscribers, by replica "
                f"{dict(Counter(s.served_by[-1] for s in subscribers))}"
            )

            load = Load(url, operator, teams, args.seed)
            limits = httpx.Limits(
                max_connections=args.clients, max_keepalive_connections=args.clients
            )
            async with httpx.AsyncClient(timeout=30.0, limits=limits) as load_http:
                workers = [asyncio.create_task(load.worker(load_http)) for _ in range(args.clients)]
                await asyncio.sleep(args.duration / 2)
                before = sum(1 for e in load.events if e.outcome == "accepted")
                await victim.kill()
                log(
                    f"SIGKILL {victim.name} (serving {len(cut_off)} subscribers; "
                    f"{before} events acknowledged)"
                )
                await asyncio.sleep(args.duration / 2)
                load.stopping = True
                await asyncio.wait_for(asyncio.gather(*workers), 120)
            log(f"load done: {len(load.events)} events")

            # The cut-off subscribers are back, on live replicas; a change reaches them.
            await wait_until(
                lambda: _async(all(len(s.served_by) > 1 for s in cut_off)),
                WAIT,
                "subscribers to reconnect",
            )
            moved_to = [s.served_by[-1] for s in cut_off]
            for s in subscribers:
                data, _ = await api.graphql(
                    GRANT, {"t": s.team_id, "a": "1.00", "k": "FREE"}, operator
                )
                assert data["grantCredits"]["errors"] == [], data
            received = []
            for s in subscribers:
                total = await api.total(s.team_id, s.token)
                received.append(await s.until(total, 30))
            report.check(
                all(received) and victim_name not in moved_to,
                f"{len(cut_off)} subscribers of the killed {victim_name} reconnected to "
                f"{moved_to} and, with the other {len(subscribers) - len(cut_off)}, received "
                f"the balance after a later grant ({sum(received)}/{len(received)})",
            )
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            followers = []

            await check_ledger(database_url, load, env, report)
            await victim.start_ready()  # back, for the limits across three replicas
            await wait_until(lambda: _all_up(http, replicas), WAIT, "HAProxy to see three replicas")
            await check_rate_limit(api, args.team_limit, report)
        await check_month_close(replicas, env, database_url, invoiced, report)
    except Exception as error:  # noqa: BLE001 - reported as a failed check, then cleaned up
        report.check(False, f"the run stopped: {type(error).__name__}: {error}")
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        for process in [proxy, *replicas, emulator]:
            await process.stop()
        if not args.keep_db:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
    report.figures["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report.figures, indent=2))
    if report.passed:
        log(f"PASS: {len(report.checks)} checks in {report.figures['seconds']} s")
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    log(
        f"FAIL: {sum(1 for ok, _ in report.checks if not ok)} checks failed; logs kept in {workdir}"
    )
    return 1


async def _async(value: bool) -> bool:
    return value


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get(path)).status_code == 200
    return False


async def _all_up(http: httpx.AsyncClient, replicas: list[Replica]) -> bool:
    """HAProxy routes to each replica again: a few round robin requests reach all three."""
    seen = set()
    for _ in range(6):
        with contextlib.suppress(httpx.HTTPError):
            response = await http.get("/readyz")
            seen.add(response.headers.get("x-served-by"))
    return seen >= {r.name for r in replicas}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=24, help="concurrent load clients")
    parser.add_argument("--teams", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=6)
    parser.add_argument("--team-limit", type=int, default=60, help="mutations a minute per team")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-url", default=os.environ.get("CLUSTER_PG_URL", "postgres://postgres@127.0.0.1:5432")
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--db-prefix", default="creditline_cluster", help="database name prefix")
    parser.add_argument("--keep-db", action="store_true", help="leave the database for a look")
    try:
        return asyncio.run(run(parser.parse_args()))
    except (asyncio.CancelledError, KeyboardInterrupt):
        log("interrupted: every process stopped, the database dropped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
