"""The notifier: turns outbox events into deliveries and delivers them, with retries.

One pass: (1) re-check blocked teams (`team.unblocked`), (2) dispatch: each undelivered
outbox event becomes one delivery per email recipient and per subscribed endpoint, in
the transaction that marks it dispatched, (3) deliver what is due, oldest event first;
a failure is retried after `base * 2**(attempts-1)` (capped at an hour) until 3 days
after the event. A crash anywhere loses nothing: an event not yet dispatched is
dispatched by the next pass, a delivery not yet marked done is sent again (with the same
event id, which receivers deduplicate by). Passes run under an advisory lock, so one
process of all the replicas delivers at a time (docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import structlog
from tortoise.transactions import in_transaction

from app import locks
from app.config import Settings
from app.credits import blocking
from app.events import outbox
from app.events.outbox import OutboxEvent
from app.kit import clock
from app.notifications import emails, webhooks
from app.notifications.models import Channel, Delivery, DeliveryStatus, WebhookEndpoint
from app.notifications.smtp import Mailer

log = structlog.get_logger(__name__)

GIVE_UP_AFTER = timedelta(days=3)
MAX_DELAY = timedelta(hours=1)
DISPATCH_BATCH = 200
DELIVERY_BATCH = 200


def retry_delay(base_seconds: float, attempts: int) -> timedelta:
    """After the `attempts`-th failure: base, 2 base, 4 base, ... at most an hour."""
    return min(timedelta(seconds=base_seconds * 2 ** max(attempts - 1, 0)), MAX_DELAY)


@dataclass
class PassReport:
    dispatched: int = 0
    delivered: int = 0
    failed: int = 0
    unblocked: int = 0
    errors: list[str] = field(default_factory=list)


class Notifier:
    """Delivers the outbox; `run_pass` once, or `start()` a loop woken after each commit."""

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.settings = settings
        self.mailer = Mailer.from_url(settings.smtp_url) if settings.smtp_url else None
        self.base_url = (base_url or settings.public_url or "http://127.0.0.1:8000").rstrip("/")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._rechecked_at = float("-inf")

    # --- the loop -------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            outbox.on_write(self.wake)
            self._task = asyncio.create_task(self._loop(), name="notifier")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                async with locks.advisory_lock(self.settings, locks.NOTIFIER, wait=False) as held:
                    if held:
                        while (await self.run_pass()).delivered >= DELIVERY_BATCH:
                            pass  # a backlog: keep going before sleeping
            except Exception:
                log.exception("notifier.pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.notify_interval_seconds)

    # --- one pass -------------------------------------------------------------------

    async def run_pass(self) -> PassReport:
        report = PassReport()
        now = asyncio.get_running_loop().time()
        if now - self._rechecked_at >= self.settings.notify_interval_seconds:
            # On the timer only, not on every wake-up: credits added unblock in their own
            # transaction; this finds the other ways back (a raised limit, a new month).
            self._rechecked_at = now
            for team_id in await blocking.servable_blocked_teams():
                if await blocking.unblock_if_served(team_id):
                    report.unblocked += 1
        while True:
            dispatched = await self.dispatch()
            report.dispatched += dispatched
            if dispatched < DISPATCH_BATCH:
                break
        await self.deliver_due(report)
        return report

    async def dispatch(self) -> int:
        """Fans undispatched events out into deliveries; returns how many events."""
        now = clock.now()
        async with in_transaction() as conn:
            query = OutboxEvent.filter(dispatched_at=None).order_by("id").limit(DISPATCH_BATCH)
            if not self.settings.is_sqlite:
                query = query.select_for_update(skip_locked=True)
            events = await query.using_db(conn)
            if not events:
                return 0
            endpoints = await WebhookEndpoint.filter(deleted_at=None).using_db(conn)
            rows: list[Delivery] = []
            for event in events:
                if self.mailer is not None and emails.is_emailed(event):
                    for address in await emails.recipients(event):
                        rows.append(self._row(event, Channel.EMAIL, address, None, now))
                for endpoint in endpoints:
                    if event.type in endpoint.events:
                        rows.append(
                            self._row(event, Channel.WEBHOOK, str(endpoint.id), endpoint.id, now)
                        )
            if rows:
                await Delivery.bulk_create(rows, ignore_conflicts=True, using_db=conn)
            ids = [e.id for e in events]
            await OutboxEvent.filter(id__in=ids).using_db(conn).update(dispatched_at=now)
            return len(events)

    @staticmethod
    def _row(
        event: OutboxEvent,
        channel: Channel,
        target: str,
        endpoint_id: uuid.UUID | None,
        now: object,
    ) -> Delivery:
        return Delivery(
            id=uuid.uuid4(),
            event_id=event.id,
            channel=channel,
            endpoint_id=endpoint_id,
            target=target,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            created_at=now,
        )

    async def deliver_due(self, report: PassReport) -> None:
        """Sends what is due: endpoints and the mail server in parallel, each in event order."""
        due = (
            await Delivery.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=clock.now())
            .order_by("event_id", "id")
            .limit(DELIVERY_BATCH)
            .prefetch_related("event", "endpoint")
        )
        lanes: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in due:
            lanes[delivery.target if delivery.channel is Channel.WEBHOOK else "smtp"].append(
                delivery
            )
        await asyncio.gather(*(self._lane(lane, report) for lane in lanes.values()))

    async def _lane(self, deliveries: list[Delivery], report: PassReport) -> None:
        held_until: datetime | None = None
        for delivery in deliveries:
            if held_until is not None:
                # Keep an endpoint's events in order: after a failure, later ones wait for
                # the failed one's next attempt (no attempt of their own is counted).
                await Delivery.filter(id=delivery.id).update(next_attempt_at=held_until)
                continue
            ok, error, status_code = await self._attempt(delivery)
            if ok:
                await self._done(delivery, status_code)
                report.delivered += 1
            else:
                retry_at = await self._failed(delivery, error, status_code)
                report.failed += 1
                report.errors.append(error or "")
                if delivery.channel is Channel.WEBHOOK:
                    held_until = retry_at

    async def _attempt(self, delivery: Delivery) -> tuple[bool, str | None, int | None]:
        event: OutboxEvent = delivery.event
        try:
            if delivery.channel is Channel.EMAIL:
                if self.mailer is None:
                    return False, "SMTP_URL is not set", None
                rendered = await emails.render(event, self.base_url)
                if rendered is None:
                    return True, None, None  # nothing to say any more (its invoice is gone)
                mail = emails.message(rendered, event, self.settings.email_from, delivery.target)
                await self.mailer.send(mail)
                return True, None, None
            endpoint: WebhookEndpoint | None = delivery.endpoint
            if endpoint is None or endpoint.deleted_at is not None:
                return True, None, None  # the endpoint was deleted: nobody to tell
            if self._http is None:
                self._http = webhooks.client()
            answer = await webhooks.post(self._http, endpoint.url, endpoint.secret, event)
            return answer.ok, answer.error, answer.status_code
        except Exception as exc:  # a bad message or a broken server: retried later
            log.warning("notifier.attempt_failed", delivery=str(delivery.id), exc_info=True)
            return False, f"{type(exc).__name__}: {exc}"[:500], None

    async def _done(self, delivery: Delivery, status_code: int | None) -> None:
        await Delivery.filter(id=delivery.id).update(
            status=DeliveryStatus.DELIVERED,
            attempts=delivery.attempts + 1,
            delivered_at=clock.now(),
            last_status_code=status_code,
            last_error=None,
        )

    async def _failed(
        self, delivery: Delivery, error: str | None, status_code: int | None
    ) -> datetime:
        """Records a failed attempt; returns when the next one is due."""
        now = clock.now()
        attempts = delivery.attempts + 1
        expired = now - delivery.event.created_at >= GIVE_UP_AFTER
        retry_at = now + retry_delay(self.settings.notify_retry_base_seconds, attempts)
        await Delivery.filter(id=delivery.id).update(
            status=DeliveryStatus.FAILED if expired else DeliveryStatus.PENDING,
            attempts=attempts,
            next_attempt_at=retry_at,
            last_error=(error or "")[:500] or None,
            last_status_code=status_code,
        )
        return retry_at
