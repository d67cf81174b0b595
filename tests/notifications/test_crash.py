"""The crash test for notifications: SIGKILL the server in a loop while changes commit.

A real `python -m app serve` (its notifier on, a fresh database of the suite's kind) takes
invitations and credit changes from concurrent clients while it is killed with SIGKILL and
restarted; a last server then drains the outbox. Every committed change's emails (SMTP sink
on loopback) and webhooks (HTTP receiver on loopback) must have arrived: none missing,
nothing invented, duplicates only under the same event id with the same body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.config import Settings
from tests.support import ROOT
from tests.support.api import JWT_SECRET, make_token
from tests.support.db import fresh_database
from tests.support.notifications import ALL_EVENTS, CREATE_ENDPOINT, receiver, smtp_sink
from tests.support.subscriptions import free_port

INVITE = """mutation($t: ID!, $e: String!) { addTeamMember(input: {teamId: $t, email: $e,
  role: MEMBER}) { invitation { id } errors { code message } } }"""
GRANT = """mutation($t: ID!, $a: Decimal!) { grantCredits(input: {teamId: $t, amount: $a,
  kind: FREE}) { errors { code } } }"""
USAGE = """mutation($t: ID!, $a: Decimal!, $k: String!) { recordUsage(input: {teamId: $t,
  amount: $a, idempotencyKey: $k}) { usage { id } errors { code } } }"""
LOW = """mutation($t: ID!) { updateNotificationSettings(input: {teamId: $t,
  lowBalanceThreshold: "5.00"}) { errors { code } } }"""
ALERT_TYPES = {"credits.low", "credits.exhausted", "invoiced_limit.reached", "alert.raised"}
DURATION = 9.0
KILLS = 3
TEAMS = 3


class Server:
    """`python -m app serve` in its own process group, so SIGKILL takes all of it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", "serve", "--port", str(self.port),
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                assert self.process.returncode is None, self.log_path.read_text()[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError("the server did not start")

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, sig)
            await self.process.wait()


async def rows(url: str, sql: str) -> list[dict[str, Any]]:
    if url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql).fetchall()]
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


class Load:
    """Clients that retry a request whose answer was lost (the server died under it)."""

    def __init__(self, server: Server, operator: str, admins: dict[str, str]) -> None:
        self.server = server
        self.operator = operator
        self.admins = admins  # team id -> admin email
        self.invited: list[str] = []  # acknowledged invitations (the invitee's address)
        self.stop = False

    async def call(
        self, http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str
    ) -> Any:
        while True:
            try:
                answer = await http.post(
                    f"{self.server.url}/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if answer.status_code < 500:
                    return answer.json()
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)

    async def inviter(self, team_id: str) -> None:
        token = make_token(self.admins[team_id])
        async with httpx.AsyncClient(timeout=5.0) as http:
            count = 0
            while not self.stop and count < 90:
                count += 1
                address = f"inv-{uuid.uuid4().hex[:10]}@example.com"
                body = await self.call(http, INVITE, {"t": team_id, "e": address}, token)
                payload = body["data"]["addTeamMember"]
                errors = payload["errors"]
                # "Already invited": the first try committed before its answer was lost.
                if not errors or errors[0]["message"] == "Already invited.":
                    self.invited.append(address)

    async def spender(self, team_id: str) -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:
            while not self.stop:
                await self.call(http, GRANT, {"t": team_id, "a": "10.00"}, self.operator)
                for amount in ("6.00", "4.00", "1.00"):  # low, then zero (blocked), refused
                    key = uuid.uuid4().hex
                    variables = {"t": team_id, "a": amount, "k": key}
                    await self.call(http, USAGE, variables, self.operator)


async def test_every_committed_change_is_told_despite_sigkills(
    settings: Settings, tmp_path: Path
) -> None:
    async with fresh_database(settings, tmp_path) as database_url, receiver() as hooks:
        with smtp_sink(tmp_path / "outbox") as sink:
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "AUTH_JWT_SECRET": JWT_SECRET,
                "ENVIRONMENT": "test",
                "SMTP_URL": sink.url,
                "NOTIFY_RETRY_BASE_SECONDS": "0.2",
                "NOTIFY_INTERVAL_SECONDS": "0.5",
                "RATE_LIMIT_ENABLED": "false",
                "STRIPE_API_KEY": settings.stripe_api_key,
                "STRIPE_API_BASE": settings.stripe_api_base,
                "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
            }
            migrate = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", "migrate", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await migrate.communicate()
            assert migrate.returncode == 0, output.decode()
            server = Server(env, tmp_path / "server.log")
            await server.start()
            operator = make_token("ops@platform.example", operator=True)
            admins: dict[str, str] = {}
            async with httpx.AsyncClient(timeout=10.0) as http:
                endpoint = await http.post(
                    f"{server.url}/graphql",
                    json={"query": CREATE_ENDPOINT, "variables": {"u": hooks.url, "e": ALL_EVENTS}},
                    headers={"Authorization": f"Bearer {operator}"},
                )
                created = endpoint.json()["data"]["createWebhookEndpoint"]
                assert created["errors"] == [], created
                for n in range(TEAMS):
                    email = f"admin-{n}@example.com"
                    token = make_token(email)
                    viewer = await http.post(
                        f"{server.url}/graphql",
                        json={"query": "{ viewer { memberships { team { id } } } }"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    team_id = viewer.json()["data"]["viewer"]["memberships"][0]["team"]["id"]
                    admins[team_id] = email
                    answer = await http.post(
                        f"{server.url}/graphql",
                        json={"query": LOW, "variables": {"t": team_id}},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert answer.json()["data"]["updateNotificationSettings"]["errors"] == []
            load = Load(server, operator, admins)
            clients = [asyncio.create_task(load.inviter(t)) for t in admins]
            clients += [asyncio.create_task(load.spender(t)) for t in admins]
            for _ in range(KILLS):
                await asyncio.sleep(DURATION / (KILLS + 1))
                await server.kill()
                await server.start()
            await asyncio.sleep(DURATION / (KILLS + 1))
            load.stop = True
            await asyncio.wait_for(asyncio.gather(*clients), 60)
            # The last server (no more changes) drains what is left.
            deadline = time.monotonic() + 90
            while True:
                waiting = await rows(
                    database_url,
                    "SELECT (SELECT COUNT(*) FROM outbox_events WHERE dispatched_at IS NULL) AS w, "
                    "(SELECT COUNT(*) FROM notification_deliveries WHERE status = 'PENDING') AS p",
                )
                if waiting[0]["w"] == 0 and waiting[0]["p"] == 0:
                    break
                assert time.monotonic() < deadline, waiting
                await asyncio.sleep(0.3)
            await server.kill(signal.SIGTERM)

            events = await rows(database_url, "SELECT id, type, team_id, data FROM outbox_events")
            failed = await rows(
                database_url, "SELECT * FROM notification_deliveries WHERE status <> 'DELIVERED'"
            )
            assert failed == []
            by_id = {f"evt_{e['id']:020d}": e for e in events}
            data_of = {
                k: e["data"] if isinstance(e["data"], dict) else json.loads(e["data"])
                for k, e in by_id.items()
            }

            # Webhooks: every public event arrived; nothing else; a duplicate is the same body.
            seen: dict[str, set[bytes]] = defaultdict(set)
            for request in hooks.accepted():
                seen[json.loads(request.body)["id"]].add(request.body)
            public = {k for k, e in by_id.items() if e["type"] in ALL_EVENTS}
            assert public - set(seen) == set(), "webhooks missing"
            assert set(seen) - public == set(), "webhooks for no committed event"
            assert all(len(bodies) == 1 for bodies in seen.values())

            # Emails: each alert to the team's admin, each invitation to its invitee.
            expected: set[tuple[str, str]] = set()
            for key, event in by_id.items():
                if event["type"] == "invitation.created":
                    expected.add((key, data_of[key]["email"]))
                elif event["type"] in ALERT_TYPES:
                    expected.add((key, admins[str(event["team_id"])]))
            got = [(str(m["X-Creditline-Event"]).split()[0], str(m["To"])) for m in sink.messages()]
            assert expected - set(got) == set(), "emails missing"
            assert set(got) - expected == set(), "emails for no committed event"

            # Every acknowledged invitation committed with its event (one, not two).
            invited = [
                data_of[k]["email"] for k, e in by_id.items() if e["type"] == "invitation.created"
            ]
            assert len(invited) == len(set(invited))
            assert set(load.invited) <= set(invited)
            kinds = {e["type"] for e in events}
            assert {"team.blocked", "team.unblocked", "credits.low", "credits.exhausted"} <= kinds
            duplicates = len(hooks.accepted()) - len(seen)
            print(
                f"\nnotifications crash test: {KILLS} SIGKILLs, {len(events)} events, "
                f"{len(load.invited)} acknowledged invitations, {len(got)} emails, "
                f"{len(hooks.accepted())} webhooks ({duplicates} repeated under the same id)"
            )
