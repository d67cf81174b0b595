"""Notifications in tests: a real SMTP sink and a real HTTP receiver on loopback, and the
notifier run pass by pass."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web

from app.config import Settings
from app.events.outbox import OutboxEvent
from app.notifications import sink
from app.notifications.models import Delivery, DeliveryStatus
from app.notifications.worker import Notifier, PassReport
from tests.support.api import Actor, Api

SETTINGS = """query($t: ID!) { team(id: $t) { notificationSettings {
  emails invoicedLimitThresholds lowBalanceThreshold } } }"""
UPDATE_SETTINGS = """mutation($t: ID!, $e: [String!], $th: [Int!], $low: Decimal) {
  updateNotificationSettings(input: {teamId: $t, emails: $e, invoicedLimitThresholds: $th,
      lowBalanceThreshold: $low}) {
    notificationSettings { emails invoicedLimitThresholds lowBalanceThreshold }
    errors { code field message } } }"""
CREATE_ENDPOINT = """mutation($u: String!, $e: [String!]!) {
  createWebhookEndpoint(input: {url: $u, events: $e}) {
    endpoint { id url events } secret errors { code field message } } }"""
DELETE_ENDPOINT = """mutation($i: ID!) { deleteWebhookEndpoint(input: {endpointId: $i}) {
  endpoint { id } errors { code field message } } }"""
ENDPOINTS = "{ webhookEndpoints { id url events createdAt } }"
DELIVERIES = """query($i: ID!, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $i, first: $first, after: $after) {
    edges { cursor node { id eventId eventType status attempts lastStatusCode lastError } }
    pageInfo { hasNextPage endCursor } } }"""
REPLAY = """mutation($i: ID!) { replayWebhookDelivery(input: {deliveryId: $i}) {
  delivery { id eventId status } errors { code field message } } }"""
ALL_EVENTS = [
    "credits.low", "credits.exhausted", "invoiced_limit.reached", "team.blocked",
    "team.unblocked", "purchase.succeeded", "purchase.failed", "invoice.issued",
    "invoice.paid", "invoice.payment_failed", "hold.expired",
]  # fmt: skip


class Sink:
    """An aiosmtpd server on loopback keeping each message as an `.eml` in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.controller = sink.start(directory)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def messages(self) -> list[EmailMessage]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
        return found

    def of_type(self, event_type: str) -> list[EmailMessage]:
        return [
            m for m in self.messages() if str(m["X-Creditline-Event"]).endswith(f" {event_type}")
        ]


@contextmanager
def smtp_sink(directory: Path) -> Iterator[Sink]:
    running = Sink(directory)
    try:
        yield running
    finally:
        running.controller.stop()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """An HTTP server on loopback: answers `failures` requests 500, then `status`."""

    port: int = 0
    failures: int = 0
    status: int = 200
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.status
        if self.failures > 0:
            self.failures -= 1
            answer = 500
        self.requests.append(Received(dict(request.headers), body, answer))
        if 300 <= answer < 400:
            return web.Response(status=answer, headers={"Location": "http://127.0.0.1:9/x"})
        return web.Response(status=answer, text="ok" if answer < 300 else "down")

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]


@asynccontextmanager
async def receiver(failures: int = 0, status: int = 200) -> AsyncIterator[Receiver]:
    state = Receiver(failures=failures, status=status)
    app = web.Application()
    app.router.add_post("/hooks", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server  # aiohttp keeps the bound socket there
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        await runner.cleanup()


def notifier(settings: Settings, smtp_url: str | None) -> Notifier:
    """A notifier of the suite's database with fast retries (run by the test, pass by pass)."""
    changed = settings.model_copy(
        update={
            "smtp_url": smtp_url or "",
            "notify_retry_base_seconds": 0.05,
            "notify_interval_seconds": 0.05,
        }
    )
    return Notifier(changed, base_url="http://console.test")


async def drain(running: Notifier, within: float = 30.0) -> PassReport:
    """Passes until no event waits for dispatch and no delivery is pending (retries
    included); fails when that takes longer than `within` seconds."""
    total = PassReport()
    deadline = asyncio.get_running_loop().time() + within
    while True:
        report = await running.run_pass()
        total.dispatched += report.dispatched
        total.delivered += report.delivered
        total.failed += report.failed
        total.unblocked += report.unblocked
        waiting = await OutboxEvent.filter(dispatched_at=None).exists()
        pending = await Delivery.filter(status=DeliveryStatus.PENDING).exists()
        if not waiting and not pending and report.unblocked == 0:
            return total
        assert asyncio.get_running_loop().time() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.05)


async def update_settings(api: Api, actor: Actor, **variables: Any) -> dict[str, Any]:
    data = await api.ok(UPDATE_SETTINGS, {"t": actor.team_id, **variables}, actor.token)
    payload: dict[str, Any] = data["updateNotificationSettings"]
    return payload


async def create_endpoint(
    api: Api, operator: Actor, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    data = await api.ok(
        CREATE_ENDPOINT, {"u": url, "e": ALL_EVENTS if events is None else events}, operator.token
    )
    payload: dict[str, Any] = data["createWebhookEndpoint"]
    return payload
