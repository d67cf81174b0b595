"""What notifications cost the usage path: `/v1/usage` with notifications on, beside the
same runs with NOTIFICATIONS=off, in one run on one database.

Each mode gets fresh teams set up alike: one hot team with plenty of credits (no
crossings: the checks' cost alone), and 100 small teams that cross their low-balance
threshold, run out (credits.exhausted, team.blocked) and are refused during the run. With
notifications on, the server's notifier delivers meanwhile: emails to an SMTP sink and
webhooks to an HTTP receiver, both on loopback in this process.
"""

from __future__ import annotations

import http.server
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from app.notifications import sink
from bench import harness, ingest

SMALL_TEAMS = 100
AMOUNT = "0.05"  # $1 of credits: low at $0.40 (12th event), exhausted at the 20th
LOW_BALANCE_UNITS = 40_000_000
EVENTS = [
    "credits.low", "credits.exhausted", "invoiced_limit.reached", "team.blocked",
    "team.unblocked", "hold.expired",
]  # fmt: skip
CREATE_ENDPOINT = """mutation($u: String!, $e: [String!]!) {
  createWebhookEndpoint(input: {url: $u, events: $e}) { errors { code } } }"""


class _Receiver(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return None


def _mode(
    database: harness.Database, on: bool, seconds: float, workers: int, smtp_url: str, hook: str
) -> dict[str, Any]:
    hot = harness.create_teams(database, 1)
    small = harness.create_teams(database, SMALL_TEAMS, dollars=1)
    ids = ",".join(f"'{t}'" for t in small)
    harness.psql(
        f"UPDATE credit_accounts SET low_balance_threshold = {LOW_BALANCE_UNITS} "
        f"WHERE team_id IN ({ids})",
        database.name,
    )
    before = database.count("outbox_events")
    env = harness.server_env(
        database,
        BROKER_URL=harness.REDIS_URL,
        NOTIFICATIONS="on" if on else "off",
        SMTP_URL=smtp_url,
        NOTIFY_INTERVAL_SECONDS="1",
    )
    server = harness.Server(env, workers=workers)
    token = harness.token()
    hot_file = ingest.teams_file(hot)
    small_file = ingest.teams_file(small)
    try:
        if on:
            answer = httpx.post(
                f"{server.url}/graphql",
                json={"query": CREATE_ENDPOINT, "variables": {"u": hook, "e": EVENTS}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.json()["data"]["createWebhookEndpoint"]["errors"] == [], answer.text
        common = (server, database)
        figures = {
            "hot": ingest.measured(
                *common, "/v1/usage", "v1_usage.lua", hot_file, ingest.CLIENTS, seconds, token
            ),
            "crossing": ingest.measured(
                *common,
                "/v1/usage",
                "v1_usage.lua",
                small_file,
                ingest.CLIENTS,
                seconds,
                token,
                AMOUNT=AMOUNT,
            ),
        }
    finally:
        server.stop()
        os.unlink(hot_file)
        os.unlink(small_file)
    figures["outbox_events"] = database.count("outbox_events") - before
    figures["blocked_teams"] = int(
        harness.psql(
            f"SELECT count(*) FROM credit_accounts WHERE blocked AND team_id IN ({ids})",
            database.name,
        )
    )
    return figures


def run(database: harness.Database, *, seconds: float, workers: int) -> dict[str, Any]:
    outbox = Path(tempfile.mkdtemp(prefix="creditline-bench-outbox-"))
    smtp = sink.start(outbox)
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
    try:
        smtp_url = f"smtp://127.0.0.1:{smtp.port}"
        figures = {
            "on": _mode(database, True, seconds, workers, smtp_url, hook),
            "off": _mode(database, False, seconds, workers, smtp_url, hook),
        }
        figures["emails"] = len(list(outbox.glob("*.eml")))
        figures["webhooks"] = _Receiver.received
        figures["deliveries_pending"] = int(
            harness.psql(
                "SELECT count(*) FROM notification_deliveries WHERE status = 'PENDING'",
                database.name,
            )
        )
        return figures
    finally:
        receiver.shutdown()
        smtp.stop()


def report(figures: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("/v1/usage", "notifications", "events/s", "requests/s", "p50 ms", "p99 ms", "outbox rows")
    ]
    for kind, label in (("hot", "1 hot team, no crossing"), ("crossing", "100 teams running out")):
        for mode in ("on", "off"):
            run = figures[mode][kind]
            rows.append(
                (
                    label,
                    mode,
                    f"{run['events_per_s']:.0f}",
                    f"{run['rps']:.0f}",
                    f"{run['p50_ms']:.1f}",
                    f"{run['p99_ms']:.1f}",
                    str(figures[mode]["outbox_events"]) if kind == "crossing" else "",
                )
            )
    return rows
